/**
 * Printing on a terminal under readline: every line goes above the one being typed (clear the
 * prompt line, print, redraw the prompt and the partial input), and a "live" line (a stream being
 * written) is rewritten in place while nothing else was printed after it.
 */
import readline from 'node:readline';

export class TerminalLines {
  /** The live line printed last, and how many terminal rows it took. */
  private last: { key: string; rows: number } | undefined;

  constructor(
    private readonly output: NodeJS.WritableStream,
    private readonly rl: () => readline.Interface | undefined,
  ) {}

  print(line: string): void {
    this.write(line);
    this.last = undefined;
  }

  /** Rewrites the line printed last under `key`, or prints a new one when something came between. */
  live(key: string, line: string): void {
    readline.clearLine(this.output, 0);
    readline.cursorTo(this.output, 0);
    if (this.last?.key === key) {
      readline.moveCursor(this.output, 0, -this.last.rows);
      readline.clearScreenDown(this.output);
    }
    this.output.write(`${line}\n`);
    this.rl()?.prompt(true);
    this.last = { key, rows: this.rows(line) };
  }

  /** After the prompt changed (conversation, typing): redraw it with the partial input. */
  redrawPrompt(): void {
    const rl = this.rl();
    if (!rl) return;
    readline.clearLine(this.output, 0);
    readline.cursorTo(this.output, 0);
    rl.prompt(true);
  }

  private write(line: string): void {
    readline.clearLine(this.output, 0);
    readline.cursorTo(this.output, 0);
    this.output.write(`${line}\n`);
    this.rl()?.prompt(true);
  }

  /** Rows a line takes at the terminal's width (one per started width; a guess of 80 columns off a TTY). */
  private rows(line: string): number {
    const columns = (this.output as { columns?: number }).columns ?? 80;
    return Math.max(1, Math.ceil([...line].length / Math.max(1, columns)));
  }
}
