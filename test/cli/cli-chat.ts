/**
 * `relay-bot chat …` as a subprocess with stdin kept open: a test types lines one by one as the
 * output calls for them, and reads what the chat printed.
 */
import type { ChildProcess } from 'node:child_process';
import { spawnCli } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface CliChatEnv {
  brokerUrl: string;
  prefix: string;
  powBits: number;
}

export class CliChat {
  readonly lines: string[] = [];
  private readonly child: ChildProcess;
  private partial = '';
  private stderr = '';
  readonly exited: Promise<number | null>;

  constructor(args: string[], cwd: string, env: CliChatEnv) {
    this.child = spawnCli(['chat', ...args], {
      cwd,
      env: {
        RELAY_BROKER_URL: env.brokerUrl,
        RELAY_TOPIC_PREFIX: env.prefix,
        RELAY_POW_BITS: String(env.powBits),
      },
    });
    this.child.stdout!.on('data', (d: Buffer) => {
      const parts = (this.partial + d.toString()).split('\n');
      this.partial = parts.pop()!;
      this.lines.push(...parts);
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.once('close', (code) => resolve(code)));
  }

  /** Types a line; returns how many lines were printed before it (for waitFor's `from`). */
  type(line: string): number {
    const mark = this.lines.length;
    this.child.stdin!.write(`${line}\n`);
    return mark;
  }

  /** The first line from `from` on matching `re`, within 30 s. */
  async waitFor(re: RegExp, from = 0): Promise<RegExpExecArray> {
    const end = Date.now() + 30_000;
    for (;;) {
      for (const l of this.lines.slice(from)) {
        const m = re.exec(l);
        if (m) return m;
      }
      if (Date.now() > end) throw new Error(`no line matching ${re}\n${this.output()}`);
      await sleep(25);
    }
  }

  /** Types a line and waits for its "(n) sent"; returns n. */
  async send(line: string): Promise<number> {
    const mark = this.type(line);
    return Number((await this.waitFor(/^\((\d+)\) sent$/, mark))[1]);
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  /** Ends stdin and waits for the exit. */
  async end(): Promise<{ code: number | null; stderr: string }> {
    this.child.stdin!.end();
    const code = await this.exited;
    return { code, stderr: this.stderr };
  }

  /** The exit code, or a failure naming what was printed when it did not exit within `waitMs`. */
  async exitCode(waitMs: number): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), waitMs)));
    const code = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (code === 'late') {
      this.child.kill('SIGKILL');
      throw new Error(`chat did not exit\n${this.output()}`);
    }
    return code;
  }

  output(): string {
    return `stdout:\n${[...this.lines, this.partial].join('\n')}\nstderr:\n${this.stderr}`;
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}
