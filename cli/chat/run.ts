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
}

/** The prompt: who is typing here (PROTOCOL.md §8 typing), then the current conversation. */
function promptText(session: ChatSession): string {
  const typing = session.typingNow();
  const note = typing.length === 0 ? '' : `(${typing.map(short).join(', ')} typing…) `;
  return `${note}${promptOf(session.current, (id) => session.label(id))}`;
}

/** Feeds lines to the session until EOF or /quit. */
function readLines(session: ChatSession, rl: readline.Interface, interactive: boolean): Promise<void> {
  return new Promise<void>((resolve) => {
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
    await readLines(session, rl, io.interactive);
    await session.idle();
    // Replies to the last lines are still on their way.
    if (!io.interactive && opts.drainMs > 0) await new Promise((r) => setTimeout(r, opts.drainMs));
  } finally {
    rl?.close();
    detach();
    session.close();
  }
}
