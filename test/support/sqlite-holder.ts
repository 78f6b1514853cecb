/**
 * Child for the SQLite one-process test: opens the relay database at RELAY_SQLITE_PATH and holds it
 * until killed, printing HOLDING; or prints REFUSED and the error, and exits 3, when it may not.
 */
import { createRelayDataSource } from '../../framework/store/index.js';
import { env } from './child.js';

try {
  await createRelayDataSource({ sqlitePath: env('RELAY_SQLITE_PATH') });
  process.stdout.write('HOLDING\n');
  setInterval(() => undefined, 60_000);
} catch (err) {
  process.stdout.write(`REFUSED ${(err as Error).name} ${(err as Error).message}\n`);
  process.exit(3);
}
