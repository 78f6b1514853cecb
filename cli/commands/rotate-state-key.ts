/**
 * `relay-bot keys rotate-state-key`: re-seals everything sealed at rest under a new state key. The
 * current key comes from RELAY_STATE_KEY, the new one from RELAY_NEW_STATE_KEY or the first line
 * of stdin (never from a flag: command lines show up in `ps` and shell history). Both stores are
 * rotated, the bot's and the CLI's, because one RELAY_STATE_KEY opens both; each store's rows are
 * re-sealed in one transaction, so a failure leaves that store under its old key.
 */
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseStateKey, TypeOrmRelayStore, type StateKeyInput } from '../../framework/store/index.js';
import type { RelayConfig } from '../config.js';
import { CommandFailed, UsageError } from '../errors.js';
import { databaseOf, describeDatabase, openDataSource, type Role } from '../runtime.js';

async function firstLineOfStdin(): Promise<string | undefined> {
  const lines = createInterface({ input: process.stdin, terminal: false });
  try {
    for await (const line of lines) return line;
    return undefined;
  } finally {
    lines.close();
  }
}

async function newKeyFromInput(): Promise<string> {
  const fromEnv = process.env.RELAY_NEW_STATE_KEY;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (process.stdin.isTTY)
    throw new UsageError(
      'no new state key. Fix: set RELAY_NEW_STATE_KEY, or pipe the new key on stdin (a terminal would echo it)',
    );
  const line = (await firstLineOfStdin())?.replace(/\r$/, '');
  if (!line)
    throw new UsageError('no new state key on stdin. Fix: set RELAY_NEW_STATE_KEY or pipe the key in');
  return line;
}

/** A SQLite store that was never created has nothing to rotate (and opening it would create it). */
function storeExists(config: RelayConfig, role: Role): boolean {
  const db = databaseOf(config, role);
  return db.url !== undefined || existsSync(db.sqlitePath);
}

async function rotateOne(config: RelayConfig, role: Role, current: StateKeyInput, next: string) {
  const db = databaseOf(config, role);
  const ds = await openDataSource(db);
  const store = new TypeOrmRelayStore(ds, { stateKey: current });
  try {
    return await store.rotateStateKey(next);
  } catch (e) {
    throw new CommandFailed(
      `${describeDatabase(db)}: ${(e as Error).message}. Nothing in this database was changed`,
    );
  } finally {
    await store.close();
  }
}

export async function rotateStateKeyCommand(config: RelayConfig): Promise<void> {
  const current = config.stateKey;
  if (current === undefined)
    throw new UsageError(
      'rotate-state-key needs the current key. Fix: set RELAY_STATE_KEY to the key the database is sealed with',
    );
  const next = await newKeyFromInput();
  try {
    parseStateKey(next);
  } catch (e) {
    throw new UsageError(`the new state key is not usable: ${(e as Error).message}`);
  }
  for (const role of ['bot', 'client'] as const) {
    const where = describeDatabase(databaseOf(config, role));
    if (!storeExists(config, role)) {
      process.stdout.write(`${where}: does not exist, nothing to rotate\n`);
      continue;
    }
    const rows = await rotateOne(config, role, current, next);
    process.stdout.write(`${where}: ${rows} sealed rows re-sealed under the new key\n`);
  }
  process.stdout.write(
    'Done. Set RELAY_STATE_KEY to the new key before the next start; the old key no longer opens these databases.\n',
  );
}
