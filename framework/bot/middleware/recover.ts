/**
 * Error recovery as middleware, outermost in the runtime's chain: a failing or timed-out update is
 * logged; a message is then answered by @OnError (under its own reply gate and time limit) or, when
 * there is none or it fails too, by the error reply. Nothing is thrown past it, so one bad message
 * cannot be redelivered forever.
 */
import { HandlerError } from '../../relay/errors.js';
import type { Middleware } from '../composer.js';
import { replyTo, ReplyGate, type BotContext } from '../context.js';
import type { BoundHandler } from '../scan.js';
import type { UpdateContext } from '../update-context.js';
import { handlerLabel, withinTimeLimit } from './timeout.js';

/** The reply sent when a handler fails and no @OnError handler answers. */
export const DEFAULT_ERROR_REPLY = 'Sorry, something went wrong.';

/** What recover() calls on a failure: the @OnError handlers and the fallback reply. */
export interface RecoverOptions {
  readonly onError: BoundHandler | undefined;
  /** Sent when no @OnError answers; false sends nothing. */
  readonly errorReply: string | false | undefined;
  readonly handlerTimeoutMs: number;
}

export const HANDLER_LABELS = { join: '@OnJoin', leave: '@OnLeave', members: '@OnMembers' } as const;

export function asError(e: unknown): Error {
  return e instanceof Error ? e : new HandlerError(`handler threw a non-Error: ${String(e)}`);
}

/** A handler may return its answer instead of calling ctx.reply(). */
export function answerWith(ctx: BotContext, result: unknown): void {
  if (typeof result === 'string') ctx.reply(result);
}

/** Middleware that turns a handler failure into @OnError handling or the default error reply. */
export function recover(options: RecoverOptions): Middleware<UpdateContext> {
  return async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      const kind = ctx.update.kind;
      if (kind !== 'message') {
        // There is no message to answer.
        ctx.log.error({ err: error }, `${HANDLER_LABELS[kind]} handler failed`);
        return;
      }
      ctx.log.error({ err: error }, 'handler failed');
      if (options.onError && (await answerError(options.onError, error, ctx, options.handlerTimeoutMs)))
        return;
      if (options.errorReply !== false && ctx.message) {
        ctx.run.reply(replyTo(ctx.message, options.errorReply ?? DEFAULT_ERROR_REPLY));
      }
    }
  };
}

/** Runs @OnError; true when it answered without failing. */
async function answerError(
  onError: BoundHandler,
  error: unknown,
  ctx: UpdateContext,
  ms: number,
): Promise<boolean> {
  const gate = new ReplyGate(ctx.run.reply, ctx.run.late);
  const controller = new AbortController();
  const ectx = ctx.derive({ gate, signal: controller.signal });
  const expire = (): void => {
    gate.close();
    controller.abort();
  };
  const outcome = await withinTimeLimit(
    async () => answerWith(ectx, await onError(asError(error), ectx)),
    ms,
    expire,
    ctx.log,
    undefined,
    (running) => ctx.run.abandon(running, controller, `@OnError of ${handlerLabel(ctx)}`),
  );
  gate.close();
  if (!outcome.ok) ctx.log.error({ err: outcome.error }, '@OnError handler failed');
  return outcome.ok;
}
