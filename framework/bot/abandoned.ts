/**
 * Handlers abandoned at their time limit (middleware/timeout.ts). The reply says they timed out,
 * but JavaScript cannot kill them: they keep running and may still use ctx. The runtime's stop()
 * aborts their signals once more and waits for them, bounded by a grace period, so that a handler
 * that honours ctx.signal is done before the store it writes through is closed; one that ignores
 * it is named in a warning, and from then on its ctx refuses with clear errors (data.ts,
 * runtime.ts) rather than reaching a closed store.
 */
import type { Logger } from 'pino';
import { ConfigError } from '../relay/errors.js';

/** How long stop() waits for abandoned handlers by default (ms). */
export const DEFAULT_STOP_GRACE_MS = 5_000;

/** The runtime option `stopGraceMs`, checked: a whole number of ms, 0 or more. */
export function stopGraceOf(option: number | undefined): number {
  const ms = option ?? DEFAULT_STOP_GRACE_MS;
  if (!Number.isSafeInteger(ms) || ms < 0) {
    throw new ConfigError(
      `stopGraceMs must be a whole number of milliseconds, 0 or more, got ${String(option)}`,
    );
  }
  return ms;
}

interface Abandoned {
  readonly controller: AbortController;
  readonly label: string;
}

/** The abandoned handlers still running, and stop()'s bounded wait for them. */
export class AbandonedHandlers {
  private readonly running = new Map<Promise<unknown>, Abandoned>();

  /** `running` settles (never rejects) when the handler finally returns or throws. */
  add(running: Promise<unknown>, controller: AbortController, label: string): void {
    const entry = { controller, label };
    const done = running.then(
      () => undefined,
      () => undefined,
    );
    this.running.set(done, entry);
    void done.then(() => this.running.delete(done));
  }

  get size(): number {
    return this.running.size;
  }

  /**
   * Aborts every abandoned handler's signal and waits for them up to `graceMs`; those still running
   * then are named in a warning and left to themselves. Resolves when they settled or at the grace.
   */
  async settle(graceMs: number, log: Logger): Promise<void> {
    if (this.running.size === 0) return;
    for (const { controller } of this.running.values()) controller.abort();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'grace'>((resolve) => {
      timer = setTimeout(() => resolve('grace'), graceMs);
      timer.unref();
    });
    const all = Promise.all([...this.running.keys()]).then(() => 'settled' as const);
    const first = await Promise.race([all, grace]);
    clearTimeout(timer);
    if (first === 'settled' || this.running.size === 0) return;
    log.warn(
      { handlers: [...this.running.values()].map((a) => a.label), graceMs },
      'stop() gave up waiting for handlers past their time limit that ignore ctx.signal; their ctx now refuses',
    );
  }
}
