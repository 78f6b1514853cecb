/**
 * Middleware, the one extension mechanism (STYLE.md §3): commands, message handlers and plugins are
 * all `(ctx, next)` functions run in order. A middleware that does not call next() ends the chain.
 */
import { HandlerError } from '../relay/errors.js';

/** Calls the next middleware; resolves when the rest of the stack has run. */
export type NextFunction = () => Promise<void>;
/** A step of a bot's message handling: does its part, then calls next() to go on (or not). */
export type Middleware<C> = (ctx: C, next: NextFunction) => Promise<void> | void;
/** A plugin can hand over a Composer (or anything with middleware()) instead of a function. */
export type MiddlewareLike<C> = Middleware<C> | { middleware(): Middleware<C> };
/** A test on the context, for conditional middleware. */
export type Predicate<C> = (ctx: C) => boolean | Promise<boolean>;

function flatten<C>(mw: MiddlewareLike<C>): Middleware<C> {
  return typeof mw === 'function' ? mw : mw.middleware();
}

const done: NextFunction = () => Promise.resolve();

/**
 * Runs `stack` in order, then `last`. A second call of the same next() throws synchronously, so the
 * mistake surfaces at the call site even when the caller forgot to await.
 */
export function compose<C>(stack: readonly MiddlewareLike<C>[]): Middleware<C> {
  const fns = stack.map(flatten);
  return (ctx, last) => {
    const dispatch = async (i: number): Promise<void> => {
      const fn = fns[i];
      if (fn === undefined) return last();
      let called = false;
      await fn(ctx, () => {
        if (called) throw new HandlerError('next() called more than once in the same middleware');
        called = true;
        return dispatch(i + 1);
      });
    };
    return dispatch(0);
  };
}

/** Runs one middleware against a context, with nothing after it. */
export function run<C>(mw: Middleware<C>, ctx: C): Promise<void> {
  return Promise.resolve(mw(ctx, done));
}

/** A middleware stack: use() adds middleware, middleware() composes them into one. */
export class Composer<C> {
  private readonly stack: Middleware<C>[] = [];
  /** compose(stack), rebuilt after use() rather than on every message. */
  private composed: Middleware<C> | undefined;

  /** Reads the stack when called, so middleware added later still runs. */
  middleware(): Middleware<C> {
    return (ctx, next) => (this.composed ??= compose(this.stack))(ctx, next);
  }

  use(...mw: MiddlewareLike<C>[]): this {
    this.stack.push(...mw.map(flatten));
    this.composed = undefined;
    return this;
  }

  /** Runs `mw` when `pred` holds, otherwise skips straight to the next middleware. */
  filter(pred: Predicate<C>, ...mw: MiddlewareLike<C>[]): this {
    const inner = compose(mw);
    return this.use(async (ctx, next) => ((await pred(ctx)) ? inner(ctx, next) : next()));
  }

  /** Runs `onTrue` or `onFalse`; either may call next() to continue after the branch. */
  branch(pred: Predicate<C>, onTrue: MiddlewareLike<C>, onFalse: MiddlewareLike<C>): this {
    const a = flatten(onTrue);
    const b = flatten(onFalse);
    return this.use(async (ctx, next) => ((await pred(ctx)) ? a(ctx, next) : b(ctx, next)));
  }

  /**
   * Catches what `mw` throws and hands it to `onError`. Errors from middleware after the boundary
   * (reached through next()) pass through untouched: the boundary guards its own contents only.
   */
  errorBoundary(onError: (err: unknown, ctx: C) => Promise<void> | void, ...mw: MiddlewareLike<C>[]): this {
    const inner = compose(mw);
    return this.use(async (ctx, next) => {
      let downstream: { error: unknown } | undefined;
      try {
        await inner(ctx, async () => {
          try {
            await next();
          } catch (error) {
            downstream = { error };
            throw error;
          }
        });
      } catch (err) {
        if (downstream && downstream.error === err) throw err;
        await onError(err, ctx);
      }
    });
  }
}
