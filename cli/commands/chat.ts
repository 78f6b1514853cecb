/**
 * `relay-bot chat [user_id…] [--group <group>]`: an interactive terminal client with the CLI's own
 * identity and sessions (client.database), for direct conversations and groups. Lines go to the
 * current conversation; the slash commands (cli/chat/format.ts HELP) are local, `//text` sends
 * `/text`. With stdin from a pipe it acts on each line in order and exits at EOF after a drain
 * period. The session itself is cli/chat/session.ts; cli/chat/run.ts reads the lines.
 */
import type { Argv } from 'yargs';
import { runChat } from '../chat/run.js';
import { ChatFiles } from '../chat/attachments.js';
import { blobStoreOf, fetchOptionsOf } from '../attachments-config.js';
import path from 'node:path';
import { loadConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { createClient, makeLogger, openStore, parseUserId } from '../runtime.js';
import type { Logger } from 'pino';

export interface ChatArgs {
  config?: string;
  user_id?: string[];
  group?: string;
  wait?: number;
}

export const DEFAULT_DRAIN_SECONDS = 3;

export const command = 'chat [user_id..]';
export const describe =
  'Talk to users and groups interactively (or from a pipe); /chathelp lists the commands';
export const builder = (y: Argv): Argv<ChatArgs> =>
  y
    .positional('user_id', {
      type: 'string',
      array: true,
      describe: '32-hex user ids; the first is current (none: start with /group or /add)',
    })
    .option('group', {
      type: 'string',
      describe: 'open a group this identity is in (group id, unique id prefix or name)',
    })
    .option('wait', {
      type: 'number',
      describe: `with piped input: seconds to keep printing replies after EOF (default ${DEFAULT_DRAIN_SECONDS})`,
    })
    .option('config', { type: 'string', describe: 'YAML or JSON config file' }) as Argv<ChatArgs>;

function checkArgs(argv: ChatArgs): { peers: string[]; wait: number; group?: string } {
  const peers = (argv.user_id ?? []).map((v) => parseUserId(v));
  const wait = argv.wait ?? DEFAULT_DRAIN_SECONDS;
  if (!Number.isFinite(wait) || wait < 0) {
    throw new UsageError(`--wait ${String(argv.wait)} is not a number of seconds. Fix: e.g. --wait 5`);
  }
  const group = argv.group?.trim();
  if (argv.group !== undefined && !group) {
    throw new UsageError(
      '--group needs a group. Fix: --group <group id or name> (see /groups in relay-bot chat)',
    );
  }
  return { peers, wait, ...(group ? { group } : {}) };
}

/**
 * Each step of leaving may wait this long (the client's stop, the store's close). Past it the chat
 * exits anyway: what is committed stays in the outbox and the next start publishes it, as after a
 * crash (ARCHITECTURE.md), so a broker or machine that does not answer cannot hold the terminal.
 */
export const STOP_STEP_MS = 5_000;

/** Runs `step`, giving up on it after `ms`; logs (debug) when it started and how it ended. */
async function bounded(log: Logger, step: string, work: Promise<unknown>, ms: number): Promise<void> {
  log.debug({ step }, 'chat: leaving, step started');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), ms)));
  const outcome = await Promise.race([work.then(() => 'done' as const), late]).catch(() => 'failed' as const);
  clearTimeout(timer);
  log.debug({ step, outcome }, 'chat: leaving, step ended');
  if (outcome === 'late') log.warn({ step, waitedMs: ms }, 'chat: leaving without waiting for this step');
}

export async function handler(argv: ChatArgs): Promise<void> {
  const { peers, wait, group } = checkArgs(argv);
  const config = loadConfig({ ...(argv.config !== undefined ? { file: argv.config } : {}) });
  const log = makeLogger(config, process.env.RELAY_LOG_LEVEL ?? 'warn');
  const { store } = await openStore(config, 'client', log);
  // SIGINT (a terminal's Ctrl-C is readline's own, this is a pipe's): leave as with /quit; a
  // second one ends the process at once (the listener is gone by then).
  const interrupt = new AbortController();
  const onSigint = (): void => interrupt.abort();
  process.once('SIGINT', onSigint);
  try {
    const client = await createClient(config, 'client', store, log);
    client.on('error', (e) => log.error({ err: e }, 'relay client error'));
    try {
      await client.start();
      await runChat(
        client,
        {
          input: process.stdin,
          output: process.stdout,
          interactive: Boolean(process.stdin.isTTY && process.stdout.isTTY),
        },
        {
          peers,
          drainMs: wait * 1000,
          ...(group !== undefined ? { group } : {}),
          files: new ChatFiles({
            store: blobStoreOf(config.attachments, config.baseDir),
            downloadDir: path.resolve(config.baseDir, config.attachments.downloadDir),
            maxBytes: config.attachments.maxBytes,
            fetchTimeoutMs: config.attachments.fetchTimeoutMs,
            fetch: fetchOptionsOf(config.attachments),
          }),
          signal: interrupt.signal,
        },
      );
    } finally {
      await bounded(log, 'client stop', client.stop(), STOP_STEP_MS);
    }
  } finally {
    process.off('SIGINT', onSigint);
    await bounded(log, 'store close', store.close(), STOP_STEP_MS);
  }
}
