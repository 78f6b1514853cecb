/**
 * Runs a ChatSession on a started client, reading lines from any stream: the terminal (with a
 * prompt showing the current conversation and who is typing, incoming lines printed above the one
 * being typed, a stream's line rewritten in place, tab completion of commands), a pipe, or a test's
 * PassThrough.
 */
import readline from 'node:readline';
import { short, HELP, promptOf } from './format.js';
import { ChatSession, type ChatClient } from './session.js';
import { TerminalLines } from './terminal.js';
import type { ChatFiles } from './attachments.js';

export interface ChatIo {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** A terminal: prompt, help at start, and lines printed above the one being typed. */
  interactive: boolean;
}

export interface ChatOptions {
  /** Direct peers (user ids); the first is the current conversation unless `group` is given. */
  peers: readonly string[];
  /** A group to open at start (id, unique id prefix or name); a UsageError when we are not in it. */
  group?: string;
  /** With piped input: how long to keep printing after EOF, for the replies on their way. */
  drainMs: number;
  /** /attach and saving received files; without it attachments show as their text. */
  files?: ChatFiles;
  /**
   * Leaving: how long the lines may go without progress before the chat stops waiting for them
   * (a post's line ends when the broker acknowledged it). Default LEAVE_QUIET_MS.
   */
  leaveQuietMs?: number;
  /** Aborted (SIGINT on a pipe): leave as with /quit. */
  signal?: AbortSignal;
}

/**
 * Long enough for a line still being sealed (first contact mines its proof of work before the
 * commit) to finish on a slow machine: such a line is not yet in the outbox, and leaving while it
 * works would lose it. A broker that never answers still holds the exit for no longer than this.
 */
export const LEAVE_QUIET_MS = 15_000;

/** What leaving says when the broker has not acknowledged every message (kept in the outbox). */
export function leftBehindLine(left: { sending: number; queued: number }, waitedMs: number): string {
  const parts = [
    `leaving after ${waitedMs / 1000} s without an answer from the broker: ${left.sending} message(s) not yet acknowledged`,
    'those already committed are kept and sent when `relay-bot chat` starts again with this config',
  ];
  if (left.queued > 0) parts.push(`${left.queued} later line(s) not acted on`);
  return parts.join('; ');
}

/** The prompt: who is typing here (PROTOCOL.md §8 typing), then the current conversation. */
function promptText(session: ChatSession): string {
  const typing = session.typingNow();
  const note = typing.length === 0 ? '' : `(${typing.map(short).join(', ')} typing…) `;
  return `${note}${promptOf(session.current, (id) => session.label(id))}`;
}

/** Feeds lines to the session until EOF or /quit. */
function readLines(
  session: ChatSession,
  rl: readline.Interface,
  interactive: boolean,
  signal: AbortSignal | undefined,
): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) rl.close();
    signal?.addEventListener('abort', () => rl.close(), { once: true });
    rl.on('line', (line) => {
      if (!session.line(line)) rl.close();
      else if (interactive) rl.prompt();
    });
    rl.on('close', resolve);
  });
}

export async function runChat(client: ChatClient, io: ChatIo, opts: ChatOptions): Promise<void> {
  let rl: readline.Interface | undefined;
  const terminal = io.interactive ? new TerminalLines(io.output, () => rl) : undefined;
  const print = terminal
    ? (line: string) => terminal.print(line)
    : (line: string) => void io.output.write(`${line}\n`);
  const session = new ChatSession(client, opts.peers, print, {
    ...(terminal ? { live: (key: string, line: string) => terminal.live(key, line), completions: true } : {}),
    ...(opts.files ? { files: opts.files } : {}),
  });
  session.onChange = () => {
    rl?.setPrompt(promptText(session));
    terminal?.redrawPrompt();
  };
  const detach = session.attach();
  try {
    // openGroup reads the groups itself: one client.groups() at start either way.
    if (opts.group !== undefined) await session.openGroup(opts.group);
    else await session.loadGroups();
    // Created only now: readline starts reading at once, and piped lines must not arrive first.
    rl = readline.createInterface({
      input: io.input,
      ...(io.interactive
        ? { output: io.output, prompt: '', completer: (line: string) => session.complete(line) }
        : {}),
      terminal: io.interactive,
    });
    if (io.interactive) {
      print(`you are ${client.userId}; ${session.where()}`);
      print(HELP);
      session.onChange();
      rl.prompt();
    }
    await readLines(session, rl, io.interactive, opts.signal);
    const quietMs = opts.leaveQuietMs ?? LEAVE_QUIET_MS;
    if (session.pendingSends > 0) {
      print(
        `waiting (up to ${quietMs / 1000} s without progress) for the broker to acknowledge ${session.pendingSends} message(s)…`,
      );
    }
    const left = await session.leave(quietMs);
    if (left.sending > 0 || left.queued > 0) {
      print(leftBehindLine(left, quietMs));
      return;
    }
    // Replies to the last lines are still on their way.
    if (!io.interactive && opts.drainMs > 0 && !opts.signal?.aborted) {
      await new Promise((r) => setTimeout(r, opts.drainMs));
    }
  } finally {
    rl?.close();
    detach();
    session.close();
  }
}
