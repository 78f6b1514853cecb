/**
 * The handler time limit as middleware: what follows it (the session save included, so a hung store
 * cannot hold the conversation) must finish within `ms`. On expiry the update's reply gate closes at
 * once (late replies are dropped), ctx.signal aborts and a HandlerError goes up to recover.ts; the
 * handler itself keeps running in the background, unanswered.
 *
 * The limit can be renewed (TimeLease): a streaming handler is not stopped while its parts keep
 * coming; it is stopped `ms` after the last part (or after its start, whichever is later).
 */
import type { Logger } from 'pino';
import { HandlerError } from '../../relay/errors.js';
import type { Middleware } from '../composer.js';
import type { TimeLease } from '../time-lease.js';
import type { UpdateContext } from '../update-context.js';

export type Outcome = { ok: true } | { ok: false; error: unknown };

/**
 * Runs `work` under the time limit; `onExpire` runs when it is reached, and `abandon` then gets the
 * work still running (settling, never rejecting), so that the runtime's stop() can wait for it.
 */
export async function withinTimeLimit(
  work: () => Promise<void>,
  ms: number,
  onExpire: () => void,
  log: Logger,
  lease?: TimeLease,
  abandon?: (running: Promise<unknown>) => void,
): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const expired = new Promise<Outcome>((resolve) => {
    const check = (): void => {
      const left = lease?.left(ms) ?? 0;
      if (left > 0) {
        timer = setTimeout(check, left);
        return;
      }
      timedOut = true;
      onExpire();
      abandon?.(finished);
      resolve({ ok: false, error: new HandlerError(`handler did not finish within ${ms} ms`) });
    };
    timer = setTimeout(check, ms);
  });
  const finished = Promise.resolve()
    .then(work)
    .then(
      (): Outcome => ({ ok: true }),
      (error: unknown): Outcome => {
        if (timedOut) log.warn({ err: error }, 'a handler failed after its time limit');
        return { ok: false, error };
      },
    );
  try {
    return await Promise.race([finished, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** How a warning names an abandoned handler: its command, else the kind of update. */
export function handlerLabel(ctx: UpdateContext): string {
  return ctx.command !== undefined ? `/${ctx.command}` : ctx.update.kind;
}

/** Middleware that abandons the rest of the chain after `ms` and reports a HandlerError. */
export function timeLimit(ms: number): Middleware<UpdateContext> {
  return async (ctx, next) => {
    const { gate, controller } = ctx.run;
    const expire = (): void => {
      gate.close();
      controller.abort();
    };
    const outcome = await withinTimeLimit(
      () => next(),
      ms,
      expire,
      ctx.log,
      ctx.run.lease,
      (running) => ctx.run.abandon(running, controller, handlerLabel(ctx)),
    );
    gate.close();
    if (!outcome.ok) throw outcome.error;
  };
}
