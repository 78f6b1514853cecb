/**
 * `relay-bot send <user_id> <text>`: one message from the CLI's own identity (client.database,
 * default ./data/cli.sqlite). With --wait N, waits up to N seconds for the peer's first reply, prints
 * it and returns; with --all too, prints every reply that arrives in those N seconds.
 * Exit 0: sent (and with --wait, a reply came); 1: no reply, or the send failed; 2: bad usage.
 */
import type { Argv } from 'yargs';
import { isEphemeralContent } from '../../framework/relay/index.js';
import { printableLines } from '../chat/format.js';
import { loadConfig } from '../config.js';
import { CommandFailed, UsageError } from '../errors.js';
import { createClient, makeLogger, openStore, parseUserId } from '../runtime.js';

export interface SendArgs {
  config?: string;
  user_id?: string;
  text?: string;
  wait?: number;
  all?: boolean;
}

export const command = 'send <user_id> <text>';
export const describe =
  'Send one message from the CLI identity; --wait N prints the first reply within N seconds (--all: every reply)';
export const builder = (y: Argv): Argv<SendArgs> =>
  y
    .positional('user_id', { type: 'string', describe: "the recipient's 32-hex user id" })
    .positional('text', { type: 'string', describe: 'the message, e.g. /ping' })
    .option('wait', { type: 'number', describe: 'seconds to wait for a reply; returns after the first' })
    .option('all', {
      type: 'boolean',
      describe: 'with --wait: keep printing replies until the wait ends',
    })
    .option('config', { type: 'string', describe: 'YAML or JSON config file' }) as Argv<SendArgs>;

export async function handler(argv: SendArgs): Promise<void> {
  const peer = parseUserId(argv.user_id);
  const text = String(argv.text ?? '');
  if (text.length === 0) throw new UsageError('the message is empty. Fix: give the text to send');
  const wait = argv.wait;
  if (wait !== undefined && (!Number.isFinite(wait) || wait < 0)) {
    throw new UsageError(`--wait ${String(wait)} is not a number of seconds. Fix: e.g. --wait 10`);
  }
  if (argv.all && wait === undefined) {
    throw new UsageError('--all needs --wait. Fix: e.g. --wait 10 --all');
  }
  const config = loadConfig({ ...(argv.config !== undefined ? { file: argv.config } : {}) });
  const log = makeLogger(config, process.env.RELAY_LOG_LEVEL ?? 'warn');
  const { store } = await openStore(config, 'client', log);
  let replies = 0;
  const waiting = replyWait(wait, argv.all === true);
  try {
    const client = await createClient(config, 'client', store, log);
    client.on('message', (m) => {
      // A typing notice is not a reply: it neither prints nor ends the wait.
      if (m.from !== peer || isEphemeralContent(m.content)) return;
      replies++;
      process.stdout.write(`${printableLines(m.content.content)}\n`);
      waiting.replied();
    });
    client.on('error', (e) => log.error({ err: e }, 'relay client error'));
    try {
      await client.start();
      await client.send(peer, text);
      await waiting.until();
    } catch (e) {
      throw new CommandFailed(`could not send to ${peer}: ${(e as Error).message}`);
    } finally {
      waiting.cancel();
      await client.stop().catch(() => undefined);
    }
  } finally {
    await store.close();
  }
  if (wait !== undefined && replies === 0) {
    throw new CommandFailed(`no reply from ${peer} within ${wait} s`);
  }
}

/**
 * The --wait: until() waits up to `seconds` from the moment it is called (after the send), ending
 * at the first reply unless `all`; with no wait it returns at once. cancel() clears the timer, so a
 * failed send does not keep the process alive.
 */
export function replyWait(
  seconds: number | undefined,
  all: boolean,
): { until(): Promise<void>; replied(): void; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  let finish: (() => void) | undefined;
  let replied = false;
  const end = (): void => {
    clearTimeout(timer);
    finish?.();
  };
  return {
    until: () =>
      seconds === undefined || (replied && !all)
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            finish = resolve;
            timer = setTimeout(resolve, seconds * 1000);
          }),
    replied: () => {
      replied = true;
      if (!all) end();
    },
    cancel: end,
  };
}
