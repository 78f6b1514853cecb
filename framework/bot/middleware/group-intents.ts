/**
 * Group intents: ctx.group.add/remove/leave made in a message handler. They cannot run while the
 * handler does (it holds the group's lane of the client until its message commits, and a membership
 * change needs that lane), so they are collected, and once the handlers succeeded committed with the
 * message (tx.groupChange) and carried out by the client after the commit; their promises settle
 * then. When the handlers fail they are dropped and their promises reject.
 *
 * Awaiting one inside the handler would wait on itself; the promise it returns refuses that at once
 * with a HandlerError instead of hanging until the time limit (see guardedPromise).
 */
import type { Logger } from 'pino';
import type { ReceivedMessage } from '../../relay/client.js';
import type { GroupChange } from '../../relay/group-types.js';
import { HandlerError } from '../../relay/errors.js';
import type { Middleware } from '../composer.js';
import type { HandleDeps } from '../context.js';
import type { BotTransaction } from '../data.js';
import type { GroupOpRunner } from '../group.js';
import type { UpdateContext } from '../update-context.js';

interface PendingChange {
  readonly what: string;
  readonly op: () => Promise<void>;
  readonly change: { groupId: string; change: GroupChange };
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

export interface GroupIntentsInit {
  readonly message: ReceivedMessage;
  readonly deps: HandleDeps;
  readonly log: Logger;
  /** The client's transaction, unwrapped (its gate is closed by the time intents settle). */
  readonly tx: BotTransaction | undefined;
  /** True while the handlers may still ask for changes. */
  readonly open: () => boolean;
  /** Runs background work the runtime's stop() waits for, after the current event. */
  readonly later: (work: () => Promise<void>) => void;
}

export class GroupIntents {
  private readonly pending: PendingChange[] = [];

  constructor(private readonly init: GroupIntentsInit) {}

  /** ctx.group's runner inside a message handler. */
  readonly runner: GroupOpRunner = (what, op, change) => {
    if (!this.init.open()) throw new HandlerError(`${what} after the handler finished or timed out`);
    const done = new Promise<void>((resolve, reject) =>
      this.pending.push({ what, op, change, resolve, reject }),
    );
    // Handlers are told not to await it; a failure is logged instead of crashing the process.
    done.catch(() => undefined);
    return guardedPromise(done, this.init.open, what);
  };

  /** Carries the changes out (handlers succeeded) or drops them (they failed). */
  settle(handlerOk: boolean): void {
    const ops = this.pending.splice(0);
    if (ops.length === 0) return;
    if (!handlerOk) {
      for (const o of ops) o.reject(new HandlerError(`${o.what} was not done: the handler failed`));
      return;
    }
    const { tx, deps, message, log } = this.init;
    const record = tx?.groupChange?.bind(tx);
    if (record && deps.afterCommit) {
      // Committed with the message; the client carries the changes out (and again after a restart).
      for (const o of ops) record(o.change.groupId, o.change.change);
      deps.afterCommit(message, () => ops.forEach((o) => o.resolve()));
      return;
    }
    const start = (): void =>
      this.init.later(async () => {
        for (const o of ops) {
          try {
            await o.op();
            o.resolve();
          } catch (err) {
            log.error({ err }, `${o.what} failed`);
            o.reject(err);
          }
        }
      });
    if (deps.afterCommit) deps.afterCommit(message, start);
    else start();
  }
}

/** Settles the update's intents after the handlers: kept when they succeeded, dropped when they threw. */
export const groupIntents: Middleware<UpdateContext> = async (ctx, next) => {
  const intents = ctx.run.intents;
  if (!intents) return next();
  try {
    await next();
  } catch (e) {
    intents.settle(false);
    throw e;
  }
  intents.settle(true);
};

/**
 * `done`, except that waiting on it (await, then) while `running()` rejects at once: it cannot
 * settle before the handler returns. Not waiting on it (`void`, keeping it for later, catch())
 * works as before.
 */
function guardedPromise(done: Promise<void>, running: () => boolean, what: string): Promise<void> {
  const refusal = (): HandlerError =>
    new HandlerError(
      `${what} was awaited inside the message handler, where it would wait on itself: it starts only after the handler returns and the message commits; call it without await`,
    );
  const wrap = (p: Promise<void>): Promise<void> => {
    const guarded: Promise<void> = {
      then(onFulfilled, onRejected) {
        if (onFulfilled && running()) {
          const refused = Promise.reject(refusal()).then(onFulfilled, onRejected);
          refused.catch(() => undefined);
          return refused;
        }
        return p.then(onFulfilled, onRejected);
      },
      catch: (onRejected) => wrap(p.catch(onRejected) as Promise<void>) as never,
      finally: (onFinally) => wrap(p.finally(onFinally)),
      [Symbol.toStringTag]: 'Promise',
    };
    return guarded;
  };
  return wrap(done);
}
