/**
 * One run of a task's handler on the replica that holds its lease (tasks.ts): a `working` update,
 * paced progress updates, then one final `completed`, `failed` or `canceled` message that commits
 * the deletion of the task's rows. Every update goes out through the client's commit-then-publish
 * path (PostFn) with the row as it now is, one at a time and in order.
 *
 * A run stopped by the runtime's stop() or by losing its lease sends nothing more: the row stays,
 * and whoever takes the task over next (this process after a restart, or another replica) resumes
 * or fails it. A canceled run ends `canceled` as soon as its handler returns, or after the grace
 * period if the handler ignores ctx.signal.
 */
import type { Logger } from 'pino';
import type { UserIdHex } from '../relay/brand.js';
import type { ContentInput } from '../relay/content.js';
import { ArgumentError } from '../relay/errors.js';
import type { Args } from './args.js';
import type { BotSelf } from './context.js';
import { TOMBSTONE } from './data.js';
import type { PostFn } from './open-replies.js';
import type { BoundHandler } from './scan.js';
import {
  encodeTaskRow,
  TASK_CANCELED,
  taskCancelKey,
  taskKey,
  taskMessage,
  type TaskContext,
  type TaskRow,
} from './task-types.js';

/** Why a run was stopped before its handler finished. */
export type TaskStopReason = 'cancel' | 'stop' | 'lost';

/** What one TaskRun needs. */
export interface TaskRunInit {
  readonly bot: string;
  readonly row: TaskRow;
  /** Written to the row: who runs it now. */
  readonly owner: string;
  readonly resumed: boolean;
  readonly handler: BoundHandler;
  readonly args: Args;
  readonly post: PostFn;
  readonly self: BotSelf;
  readonly log: Logger;
  readonly now: () => number;
  readonly progressEveryMs: number;
  readonly cancelGraceMs: number;
}

type Outcome = { state: 'completed' | 'failed' | 'canceled'; content: string } | undefined;

/** A task handler running (see the module comment). */
export class TaskRun {
  private readonly controller = new AbortController();
  private stopped: TaskStopReason | undefined;
  private wake: (() => void) | undefined;
  private row: TaskRow;
  private outbound: Promise<unknown> = Promise.resolve();
  private lastProgressAt = -Infinity;
  private pending: { fraction?: number; status?: string } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private finished = false;

  constructor(private readonly init: TaskRunInit) {
    this.row = init.row;
  }

  get id(): string {
    return this.init.row.id;
  }

  /**
   * Stops the handler (ctx.signal aborts). 'cancel' ends the task `canceled`; 'stop' and 'lost'
   * leave its row for the next owner.
   */
  stop(reason: TaskStopReason): void {
    if (this.stopped !== undefined) return;
    this.stopped = reason;
    this.controller.abort(new Error(`task ${reason}`));
    this.wake?.();
  }

  /** Runs the handler to its end; never throws. */
  async run(): Promise<void> {
    const { log } = this.init;
    try {
      await this.update('working', this.init.resumed ? 'resumed after a restart' : 'working');
      const outcome = await this.runHandler();
      this.finished = true;
      clearTimeout(this.timer);
      if (outcome === undefined) return;
      await this.outbound;
      const rows = [
        { conversationId: taskKey(this.init.bot, this.id), json: TOMBSTONE },
        { conversationId: taskCancelKey(this.init.bot, this.id), json: TOMBSTONE },
      ];
      await this.init.post(this.row.to, taskMessage(this.row, outcome.state, outcome.content), rows);
      log.debug({ task: this.id, state: outcome.state }, 'task ended');
    } catch (err) {
      // The row stays: the next owner of the task ends it.
      log.error({ err, task: this.id }, 'task run failed to send an update; left for the next owner');
    } finally {
      this.finished = true;
      clearTimeout(this.timer);
    }
  }

  private async runHandler(): Promise<Outcome> {
    const stopped = new Promise<void>((resolve) => (this.wake = resolve));
    const work = (async (): Promise<Outcome> => {
      try {
        const value = await this.init.handler(this.context());
        return { state: 'completed', content: typeof value === 'string' ? value : 'done' };
      } catch (err) {
        if (this.stopped === undefined) this.init.log.warn({ err, task: this.id }, 'task handler failed');
        const reason = err instanceof Error && err.message !== '' ? err.message : 'unknown error';
        return { state: 'failed', content: `the task failed: ${reason}` };
      }
    })();
    const grace = stopped.then(
      () => new Promise<void>((r) => setTimeout(r, this.init.cancelGraceMs).unref()),
    );
    const result = await Promise.race([work, grace.then(() => undefined)]);
    if (this.stopped === 'cancel') return { state: 'canceled', content: TASK_CANCELED };
    if (this.stopped !== undefined) return undefined;
    return result;
  }

  private context(): TaskContext<Args> {
    const row = this.row;
    return {
      task: {
        id: row.id,
        resumed: this.init.resumed,
        progress: (fraction, status) => this.progress(fraction, status),
      },
      args: this.init.args,
      argsText: row.argsText,
      command: row.command,
      sender: row.requester as UserIdHex,
      conversation: row.conversation,
      bot: this.init.self,
      log: this.init.log.child({ task: row.id }),
      signal: this.controller.signal,
      reply: async (text: string) => {
        if (typeof text !== 'string' || text === '') throw new ArgumentError('ctx.reply() needs a text');
        await this.send({ content: text, replyTo: row.replyTo }, []);
      },
    };
  }

  private progress(fraction: number | undefined, status: string | undefined): void {
    if (fraction !== undefined && (typeof fraction !== 'number' || !(fraction >= 0 && fraction <= 1)))
      throw new ArgumentError('ctx.task.progress(fraction): fraction is a number from 0 to 1');
    if (status !== undefined && typeof status !== 'string')
      throw new ArgumentError('ctx.task.progress(fraction, status): status is a string');
    if (this.finished || this.stopped !== undefined) return;
    this.pending = {
      ...(fraction !== undefined ? { fraction } : {}),
      ...(status !== undefined ? { status } : {}),
    };
    if (this.timer) return;
    const wait = Math.max(0, this.lastProgressAt + this.init.progressEveryMs - this.init.now());
    this.timer = setTimeout(() => this.flushProgress(), wait);
    this.timer.unref();
  }

  private flushProgress(): void {
    this.timer = undefined;
    const p = this.pending;
    this.pending = undefined;
    if (!p || this.finished || this.stopped !== undefined) return;
    this.lastProgressAt = this.init.now();
    void this.update('working', p.status ?? this.row.status ?? 'working', p.fraction).catch((err: unknown) =>
      this.init.log.warn({ err, task: this.id }, 'a progress update failed'),
    );
  }

  /** A `working` update committed with the row as it now is. */
  private update(state: 'working', status: string, progress?: number): Promise<void> {
    this.row = {
      ...this.row,
      state,
      status,
      owner: this.init.owner,
      updatedAt: this.init.now(),
      ...(progress !== undefined ? { progress } : {}),
    };
    const json = encodeTaskRow(this.row);
    return this.send(taskMessage(this.row, state, status, this.row.progress), [
      { conversationId: taskKey(this.init.bot, this.id), json },
    ]);
  }

  private send(content: ContentInput, data: Array<{ conversationId: string; json: string }>): Promise<void> {
    const next = this.outbound.then(() => this.init.post(this.row.to, content, data));
    this.outbound = next.catch(() => undefined);
    return next.then(() => undefined);
  }
}
