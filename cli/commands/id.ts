/** `relay-bot id`: the bot's user id, creating its identity on first use; nothing else on stdout. */
import type { Argv } from 'yargs';
import { loadConfig } from '../config.js';
import { createClient, makeLogger, openStore } from '../runtime.js';

export interface IdArgs {
  config?: string;
}

export const command = 'id';
export const describe = "Print the bot's user id (creates the identity if there is none)";
export const builder = (y: Argv): Argv<IdArgs> =>
  y.option('config', { type: 'string', describe: 'YAML or JSON config file' });

export async function handler(argv: IdArgs): Promise<void> {
  const config = loadConfig({ ...(argv.config !== undefined ? { file: argv.config } : {}) });
  const log = makeLogger(config);
  const { store } = await openStore(config, 'bot', log);
  try {
    const client = await createClient(config, 'bot', store, log, { powWorkers: 0 });
    process.stdout.write(`${client.userId}\n`);
    await client.stop();
  } finally {
    await store.close();
  }
}
