/** `relay-bot migrate`: applies pending database migrations (the bot's store, and with --client the CLI's). */
import type { Argv } from 'yargs';
import { runMigrations } from '../../framework/store/index.js';
import { loadConfig } from '../config.js';
import { databaseOf, describeDatabase, openDataSource, type Role } from '../runtime.js';

export interface MigrateArgs {
  config?: string;
  client?: boolean;
}

export const command = 'migrate';
export const describe = 'Apply pending database migrations';
export const builder = (y: Argv): Argv<MigrateArgs> =>
  y
    .option('client', { type: 'boolean', describe: "also migrate the CLI's own store (client.database)" })
    .option('config', { type: 'string', describe: 'YAML or JSON config file' });

export async function handler(argv: MigrateArgs): Promise<void> {
  const config = loadConfig({ ...(argv.config !== undefined ? { file: argv.config } : {}) });
  const roles: Role[] = argv.client ? ['bot', 'client'] : ['bot'];
  for (const role of roles) {
    const db = databaseOf(config, role);
    const ds = await openDataSource(db, false);
    try {
      const ran = await runMigrations(ds);
      process.stdout.write(
        ran.length === 0
          ? `${describeDatabase(db)}: up to date\n`
          : `${describeDatabase(db)}: applied ${ran.join(', ')}\n`,
      );
    } finally {
      await ds.destroy();
    }
  }
}
