/**
 * `relay-bot id`: the bot's user id, creating its identity on first use; nothing else on stdout.
 * `--client`: the CLI's own identity instead (the one send and chat use, and others invite to groups).
 */
import type { Argv } from 'yargs';
import { loadConfig } from '../config.js';
import { createClient, makeLogger, openStore } from '../runtime.js';

export interface IdArgs {
  config?: string;
  client?: boolean;
}

export const command = 'id';
export const describe = "Print the bot's user id (creates the identity if there is none)";
export const builder = (y: Argv): Argv<IdArgs> =>
  y
    .option('client', {
      type: 'boolean',
      describe: "the CLI's own user id (send, chat) instead of the bot's",
    })
    .option('config', { type: 'string', describe: 'YAML or JSON config file' }) as Argv<IdArgs>;

export async function handler(argv: IdArgs): Promise<void> {
  const config = loadConfig({ ...(argv.config !== undefined ? { file: argv.config } : {}) });
  const role = argv.client ? 'client' : 'bot';
  const log = makeLogger(config);
  // Asked while the bot runs, too: the identity then exists, so this only reads it.
  const { store } = await openStore(config, role, log, { inspect: true });
  try {
    const client = await createClient(config, role, store, log, { powWorkers: 0 });
    process.stdout.write(`${client.userId}\n`);
    await client.stop();
  } finally {
    await store.close();
  }
}
