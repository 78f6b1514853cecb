/**
 * Durable tasks (PROTOCOL.md §8 `task`): what a task command's handler sees (TaskContext), the
 * options of `@OnCommand(name, { task: … })` and BotRuntime's `tasks`, and the durable row each
 * task is while it runs.
 *
 * The row lives in the bot's conversation data under `tasks:<bot>:<task id>`, like scheduled jobs
 * and open-reply markers: it is written in the request's transaction (so the task exists exactly
 * when the request and its `submitted` answer were committed) and rewritten or deleted only
 * together with a `task` message that says so (commit-then-publish), so what the requester was
 * told and what the row says never disagree, not even after a crash. A cancel request is its own
 * row (`task-cancel:<bot>:<task id>`): the run never rewrites it, so a progress update cannot
 * overwrite a cancel.
 */
import type { Logger } from 'pino';
import type { UserIdHex } from '../relay/brand.js';
import type { TaskContent, TaskState } from '../relay/content-types.js';
import { isStoredTarget, storedObject } from './data.js';
import type { BotSelf, Conversation } from './context.js';
import type { PostTarget } from './open-replies.js';

/** What a restart does to a task that was running: run its handler again, or end it `failed`. */
export type TaskRestartPolicy = 'resume' | 'fail';

/** `@OnCommand(name, { task: { … } })`: how a task command behaves across restarts. */
export interface TaskCommandOptions {
  /**
   * 'fail' (default): a task a crash or restart cut short ends `failed` with TASK_RESTART_FAILED.
   * 'resume': its handler runs again, with ctx.task.resumed true; make it idempotent.
   */
  onRestart?: TaskRestartPolicy;
}

/** BotRuntime's `tasks` option: limits and pacing. */
export interface TaskLimits {
  /** Unfinished tasks one requester may have (default 3). */
  perUser?: number;
  /** Unfinished tasks of this bot in all (default 20). */
  total?: number;
  /** At most one progress update per this many ms per task (default 1000); later ones coalesce. */
  progressEveryMs?: number;
  /** How often a replica looks for tasks to take over and for cancel requests (default 1000 ms). */
  sweepMs?: number;
  /** How long a canceled handler may take to return before the task ends anyway (default 2000 ms). */
  cancelGraceMs?: number;
}

/** The defaults of TaskLimits. */
export const DEFAULT_TASK_LIMITS: Required<TaskLimits> = {
  perUser: 3,
  total: 20,
  progressEveryMs: 1_000,
  sweepMs: 1_000,
  cancelGraceMs: 2_000,
};

/** The `failed` text of a task a restart cut short under onRestart 'fail'. */
export const TASK_RESTART_FAILED = 'the bot restarted while this task was running; please ask again';
/** The `canceled` text. */
export const TASK_CANCELED = 'canceled by the requester';
/** Sent when the requester has too many unfinished tasks. */
export const TASK_LIMIT_USER = 'you have too many tasks running; wait for one to finish or cancel one';
/** Sent when the bot has too many unfinished tasks in all. */
export const TASK_LIMIT_TOTAL = 'this bot is busy with too many tasks; please try again later';

/** ctx.task in a task handler. */
export interface TaskHandle {
  /** The task id: the `id` of its `task` messages. */
  readonly id: string;
  /** The handler runs again after a restart (onRestart 'resume'); work done before may be redone. */
  readonly resumed: boolean;
  /**
   * Reports progress: a `working` update with `fraction` (0..1) and/or a status text. Paced to one
   * per TaskLimits.progressEveryMs; in between, the newest one waits and older ones are dropped.
   */
  progress(fraction?: number, status?: string): void;
}

/**
 * What the handler of a task command receives. It runs outside any message: there is no
 * transaction, session or reply gate. Its return value (a string) is the `completed` result; a
 * thrown error ends the task `failed` with the error's message. ctx.signal aborts when the
 * requester cancels or the runtime stops.
 */
export interface TaskContext<A = Record<string, unknown>> {
  readonly task: TaskHandle;
  readonly args: A;
  readonly argsText: string;
  readonly command: string;
  /** Who asked (the MLS-authenticated sender of the request); only they may cancel. */
  readonly sender: UserIdHex;
  readonly conversation: Conversation;
  readonly bot: BotSelf;
  readonly log: Logger;
  readonly signal: AbortSignal;
  /** Posts a text message to the conversation at once (outside the task's own messages). */
  reply(text: string): Promise<void>;
}

/** A task's durable row (see the module comment). */
export interface TaskRow {
  readonly id: string;
  /** Where the request came from; the task's messages go there. */
  readonly conversation: Conversation;
  readonly to: PostTarget;
  /** The request's message id: what every `task` message answers. */
  readonly replyTo: string;
  readonly requester: string;
  readonly command: string;
  readonly argsText: string;
  readonly state: Extract<TaskState, 'submitted' | 'working'>;
  readonly progress?: number;
  readonly status?: string;
  /** The replica (or process) that runs it now; absent while only submitted. */
  readonly owner?: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** The data-key prefix of a bot's task rows. */
export const taskPrefix = (bot: string): string => `tasks:${bot}:`;
/** The data key of one task's row. */
export const taskKey = (bot: string, id: string): string => `${taskPrefix(bot)}${id}`;
/** The data key of one task's cancel request. */
export const taskCancelKey = (bot: string, id: string): string => `task-cancel:${bot}:${id}`;
/** The lease that says which replica runs a task. */
export const taskLeaseName = (bot: string, id: string): string => `task:${bot}:${id}`;

/** A row as stored. */
export function encodeTaskRow(row: TaskRow): string {
  return JSON.stringify(row);
}

/** A row, or undefined for a tombstone or anything this version cannot read. */
export function decodeTaskRow(json: string): TaskRow | undefined {
  const o = storedObject(json) as Partial<TaskRow> | undefined;
  if (!o) return undefined;
  const strings = [o.id, o.replyTo, o.requester, o.command, o.argsText];
  if (strings.some((s) => typeof s !== 'string')) return undefined;
  if (!isStoredTarget(o.to)) return undefined;
  if (typeof o.conversation !== 'object' || o.conversation === null) return undefined;
  if (o.state !== 'submitted' && o.state !== 'working') return undefined;
  if (typeof o.createdAt !== 'number' || typeof o.updatedAt !== 'number') return undefined;
  return o as TaskRow;
}

/** The `task` message of a row's state (or a final state with its text). */
export function taskMessage(row: TaskRow, state: TaskState, content: string, progress?: number): TaskContent {
  return {
    type: 'task',
    id: row.id,
    replyTo: row.replyTo,
    state,
    content,
    ...(progress !== undefined ? { progress } : {}),
  };
}
