/**
 * "Typing…" while the model thinks. PROTOCOL.md §8: a typing start lapses after 10 s unless
 * repeated and a sender sends at most one per 3 s, so it is repeated every `everyMs` (default 5 s)
 * until stop(). Typing is a courtesy: a failure to send it is logged, never the handler's failure.
 */
import type { BotContext } from '../../index.js';

type Logger = BotContext['log'];

export const DEFAULT_TYPING_EVERY_MS = 5000;

export class TypingIndicator {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** undefined: the runtime has no ctx.typing, and start() does nothing. */
    private readonly typing: (() => Promise<void>) | undefined,
    private readonly log: Logger,
    private readonly everyMs = DEFAULT_TYPING_EVERY_MS,
  ) {}

  start(): void {
    if (this.typing === undefined) return;
    this.send();
    this.timer = setInterval(() => this.send(), this.everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private send(): void {
    this.typing?.().catch((err: unknown) => this.log.debug({ err }, 'typing indicator not sent'));
  }
}
