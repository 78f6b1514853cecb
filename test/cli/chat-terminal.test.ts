/**
 * `relay-bot chat` on a real terminal: the real CLI runs in a tmux pane (a pseudo-terminal, so
 * readline and TerminalLines take their TTY paths) against an agent bot on a real broker. What the
 * pane shows is asserted: typing in the prompt and gone again, a stream written on ONE line that is
 * rewritten part by part into the final text, and /choose answering an actions prompt. The stream's
 * parts are driven by the test (each pushed only after the pane shows the one before), so nothing
 * depends on timing. Skips, saying why, where tmux is not installed (CI has it). /quit must end the
 * CLI with status 0 (test/cli/chat-quit.test.ts covers leaving while the broker does not answer).
 */
import { execFile, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Bot, BotRuntime, OnAction, OnCommand, type BotContext } from '../../framework/bot/index.js';
import { MemoryRelayStore, RelayClient } from '../../framework/relay/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { cliEnv, MAIN, ROOT, tempDir } from './helpers.js';

const run = promisify(execFile);
/** tsx as helpers.spawnCli loads it: resolved from the repository, not from the pane's directory. */
const TSX = pathToFileURL(createRequire(path.join(ROOT, 'package.json')).resolve('tsx')).href;
const POW_BITS = 8;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function hasTmux(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v tmux'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const TMUX = hasTmux();
if (!TMUX) console.warn('chat-terminal.test.ts skipped: tmux is not installed (command -v tmux failed)');
const maybe = TMUX ? test : test.skip;

/** An async iterable whose parts the test pushes. */
class Parts implements AsyncIterable<string> {
  private readonly queue: Array<string | null> = [];
  private wake: (() => void) | undefined;
  push(p: string | null): void {
    this.queue.push(p);
    this.wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<string> {
    for (;;) {
      while (this.queue.length === 0) await new Promise<void>((r) => (this.wake = r));
      const p = this.queue.shift()!;
      if (p === null) return;
      yield p;
    }
  }
}

let parts = new Parts();
let thinking: { release: () => void } | undefined;

@Bot({ name: 'agent', typing: false })
class TerminalAgent {
  /** Typing until the test lets it answer. */
  @OnCommand('slow')
  async slow(ctx: BotContext): Promise<void> {
    await ctx.typing();
    await new Promise<void>((release) => (thinking = { release }));
    ctx.reply('done thinking');
  }

  @OnCommand('stream')
  async stream(ctx: BotContext): Promise<void> {
    await ctx.stream(parts);
  }

  @OnCommand('menu')
  menu(ctx: BotContext): void {
    ctx.actions('Pick a colour', [
      { id: 'red', label: 'Red' },
      { id: 'blue', label: 'Blue' },
    ]);
  }

  @OnAction()
  chosen(ctx: BotContext): void {
    ctx.reply(`you chose ${ctx.action!.id}`);
  }
}

/** One tmux server of its own (its socket in the test's temp dir), one pane running the CLI. */
class Pane {
  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly socket: string,
  ) {}

  private tmux(...args: string[]): Promise<{ stdout: string }> {
    return run('tmux', ['-S', this.socket, '-f', '/dev/null', ...args], { env: this.env });
  }

  async start(cwd: string, args: string[]): Promise<void> {
    // The pane's shell runs the CLI as helpers.spawnCli does; the server's environment is cliEnv's.
    // The shell prints the CLI's exit status after it (tmux's pane_dead_status is not set for it).
    const argv = `${[process.execPath, '--import', TSX, MAIN, ...args].map(quote).join(' ')}; echo "[exit status $?]"`;
    await this.tmux('new-session', '-d', '-s', 'chat', '-x', '180', '-y', '60', '-c', cwd, argv);
    await this.tmux('set-option', '-t', 'chat', 'remain-on-exit', 'on').catch(() => undefined);
  }

  /** Types `text` literally, then Enter. */
  async type(text: string): Promise<void> {
    await this.tmux('send-keys', '-t', 'chat', '-l', text);
    await this.tmux('send-keys', '-t', 'chat', 'Enter');
  }

  /** The visible pane, wrapped lines joined, trailing blank lines dropped. */
  async screen(): Promise<string[]> {
    const { stdout } = await this.tmux('capture-pane', '-p', '-J', '-t', 'chat');
    const lines = stdout.split('\n').map((l) => l.trimEnd());
    while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    return lines;
  }

  /** Polls the pane until `ok` holds (generous: the machine may be loaded). */
  async until(what: string, ok: (lines: string[]) => boolean): Promise<string[]> {
    const end = Date.now() + 60_000;
    for (;;) {
      const lines = await this.screen();
      if (ok(lines)) return lines;
      if (Date.now() > end) throw new Error(`pane never showed ${what}:\n${lines.join('\n')}`);
      await sleep(50);
    }
  }

  async close(): Promise<void> {
    await this.tmux('kill-server').catch(() => undefined);
  }
}

function quote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

let broker: TestBroker;
beforeAll(async () => {
  if (TMUX) broker = await getTestBroker();
});
afterAll(async () => {
  await broker?.close();
});

maybe(
  'on a TTY: typing in the prompt then gone, a stream rewritten on one line, /choose on actions',
  async () => {
    parts = new Parts();
    const prefix = uniqueName('chat-tty');
    // The test paces the handlers: their time limit must not cut in.
    const runtime = new BotRuntime(new TerminalAgent(), { handlerTimeoutMs: 150_000 });
    const client = await RelayClient.create({
      store: new MemoryRelayStore(),
      broker: { url: broker.url },
      topicPrefix: prefix,
      powBits: POW_BITS,
      profile: runtime.profile,
    });
    await client.start();
    runtime.attach(client);
    const tmp = await tempDir('relay-chat-tty-');
    const pane = new Pane(
      cliEnv({
        RELAY_BROKER_URL: broker.url,
        RELAY_TOPIC_PREFIX: prefix,
        RELAY_POW_BITS: String(POW_BITS),
        NODE_PATH: undefined,
      }),
      path.join(tmp.dir, 'tmux.sock'),
    );
    const bot = `[${client.userId.slice(0, 8)}]`;
    const has = (lines: string[], s: string): boolean => lines.some((l) => l.includes(s));
    const prompt = (lines: string[]): string => lines[lines.length - 1] ?? '';
    try {
      await pane.start(tmp.dir, ['chat', client.userId, '--wait', '1']);
      await pane.until('the greeting', (l) => has(l, 'you are '));

      // Typing shows in the prompt while the bot thinks, and is gone with its answer.
      await pane.type('/slow');
      let lines = await pane.until('typing in the prompt', (l) => prompt(l).includes('typing…'));
      expect(prompt(lines)).toContain(`(${client.userId.slice(0, 8)} typing…)`);
      await pane.until('the handler waiting', () => thinking !== undefined);
      thinking!.release();
      lines = await pane.until('the answer', (l) => has(l, `${bot} done thinking`));
      lines = await pane.until('typing gone', (l) => !prompt(l).includes('typing…'));
      expect(lines.filter((l) => l.includes('typing…'))).toEqual([]);

      // A stream: one line, rewritten as parts arrive, ending as the final text.
      await pane.type('/stream');
      parts.push('Once');
      await pane.until('the first part', (l) => has(l, `${bot} Once …`));
      parts.push(' upon');
      lines = await pane.until('the second part', (l) => has(l, `${bot} Once upon …`));
      expect(lines.filter((l) => l.includes('Once'))).toHaveLength(1);
      parts.push(' a time.');
      parts.push(null);
      lines = await pane.until('the final text', (l) => has(l, `${bot} Once upon a time.`));
      const storyLines = lines.filter((l) => l.includes('Once'));
      expect(storyLines).toHaveLength(1);
      expect(storyLines[0]).toMatch(/^\(\d+\) \[[0-9a-f]{8}\] Once upon a time\.$/);

      // Actions: the buttons are listed, /choose answers, the bot's handler replies.
      await pane.type('/menu');
      lines = await pane.until('the buttons', (l) => has(l, '2. Blue'));
      const menu = /^\((\d+)\) \[[0-9a-f]{8}\] Pick a colour$/.exec(
        lines.find((l) => l.includes('Pick a colour')) ?? '',
      );
      expect(menu).not.toBeNull();
      await pane.type('/choose 2');
      lines = await pane.until('the choice answered', (l) => has(l, `${bot} you chose blue`));
      expect(has(lines, `chose "Blue" on (${menu![1]}) "Pick a colour"`)).toBe(true);

      expect(lines.filter((l) => l.startsWith('!') || l.includes('relay-bot:'))).toEqual([]);
      // Leaving: every step of it is bounded (cli/commands/chat.ts STOP_STEP_MS), so /quit exits.
      await pane.type('/quit');
      lines = await pane.until('the CLI exited', (l) => has(l, '[exit status '));
      expect(lines.filter((l) => l.includes('[exit status '))).toEqual(['[exit status 0]']);
    } finally {
      await pane.close();
      await tmp.remove();
      await runtime.stop().catch(() => undefined);
      await client.stop().catch(() => undefined);
    }
  },
  180_000,
);
