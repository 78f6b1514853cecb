/**
 * Saves ctx.session after the handlers that follow succeeded, unless they ran out of time (that
 * update was already answered as a failure). Within the time limit: see timeout.ts.
 */
import type { Middleware } from '../composer.js';
import type { UpdateContext } from '../update-context.js';

/** Middleware that saves a changed ctx.session with the update's transaction. */
export const sessionSave: Middleware<UpdateContext> = async (ctx, next) => {
  await next();
  if (!ctx.signal.aborted) await ctx.run.session.save();
};
