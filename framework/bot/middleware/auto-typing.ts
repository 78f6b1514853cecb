/**
 * Automatic typing: when the handlers of a message run longer than `afterMs`, the run detaches
 * (its message commits early, detached-run.ts) and `typing start` goes out, repeated every
 * `everyMs` until the handlers finish; quiet while a stream is running. Without a way to send
 * (HandleDeps.post: not attached, as in most unit tests) it stays out of the way.
 */
import type { Middleware } from '../composer.js';
import type { TypingPlan } from '../typing.js';
import type { UpdateContext } from '../update-context.js';

/** Runtime middleware: typing indicators while a handler runs longer than the plan's delay. */
export function autoTyping(plan: TypingPlan): Middleware<UpdateContext> {
  return async (ctx, next) => {
    const run = ctx.run.detached;
    if (plan === false || !run || !ctx.run.deps.post) return next();
    let timer: NodeJS.Timeout | undefined;
    const tick = (): void => {
      if (!ctx.run.gate.isOpen) return;
      void run.autoTyping().catch((err: unknown) => ctx.log.debug({ err }, 'automatic typing failed'));
      timer = setTimeout(tick, plan.everyMs);
    };
    timer = setTimeout(tick, plan.afterMs);
    try {
      await next();
    } finally {
      clearTimeout(timer);
    }
  };
}
