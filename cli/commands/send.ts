/**
 * `relay-bot send <user_id> <text>`: one message from the CLI's own identity (client.database,
 * default ./data/cli.sqlite). With --wait, prints the replies that arrive in that many seconds.
 * Exit 0: sent (and with --wait, a reply came); 1: no reply, or the send failed; 2: bad usage.
 */
import type { Argv } from 'yargs';
import { printableLines } from '../chat/format.js';
import { loadConfig } from '../config.js';
import { CommandFailed, UsageError } from '../errors.js';
import { createClient, makeLogger, openStore, parseUserId, sleep } from '../runtime.js';

export interface SendArgs {
  config?: string;
  user_id?: string;
  text?: string;
  wait?: number;
}

export const command = 'send <user_id> <text>';
export const describe = 'Send one message from the CLI identity; --wait N prints replies for N seconds';
export const builder = (y: Argv): Argv<SendArgs> =>
  y
    .positional('user_id', { type: 'string', describe: "the recipient's 32-hex user id" })
    .positional('text', { type: 'string', describe: 'the message, e.g. /ping' })
    .option('wait', { type: 'number', describe: 'seconds to wait for replies' })
    .option('config', { type: 'string', describe: 'YAML or JSON config file' }) as Argv<SendArgs>;

export async function handler(argv: SendArgs): Promise<void> {
  const peer = parseUserId(argv.user_id);
  const text = String(argv.text ?? '');
  if (text.length === 0) throw new UsageError('the message is empty. Fix: give the text to send');
  const wait = argv.wait;
  if (wait !== undefined && (!Number.isFinite(wait) || wait < 0)) {
    throw new UsageError(`--wait ${String(wait)} is not a number of seconds. Fix: e.g. --wait 10`);
  }
  const config = loadConfig({ ...(argv.config !== undefined ? { file: argv.config } : {}) });
  const log = makeLogger(config, process.env.RELAY_LOG_LEVEL ?? 'warn');
  const { store } = await openStore(config, 'client', log);
  let replies = 0;
  try {
    const client = await createClient(config, 'client', store, log);
    client.on('message', (m) => {
      if (m.from !== peer) return;
      replies++;
      process.stdout.write(`${printableLines(m.content.content)}\n`);
    });
    client.on('error', (e) => log.error({ err: e }, 'relay client error'));
    try {
      await client.start();
      await client.send(peer, text);
      if (wait !== undefined) await sleep(wait * 1000);
    } catch (e) {
      throw new CommandFailed(`could not send to ${peer}: ${(e as Error).message}`);
    } finally {
      await client.stop().catch(() => undefined);
    }
  } finally {
    await store.close();
  }
  if (wait !== undefined && replies === 0) {
    throw new CommandFailed(`no reply from ${peer} within ${wait} s`);
  }
}
