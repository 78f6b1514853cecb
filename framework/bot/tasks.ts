/**
 * Durable tasks: `@OnCommand(name, { task: true })` answers at once with a `task` message
 * (`submitted`), and the handler runs afterwards, outside the request's transaction and its time
 * limit (task-run.ts). The task is a durable row (task-types.ts) from the request's commit until
 * the final message's, so it is never silently dropped:
 *
 * - One process (no leases): at start-up, once connected, every row left over is a task the last
 *   life of the process did not finish: it is resumed or failed (TaskCommandOptions.onRestart);
 *   a row still `submitted` simply starts.
 * - Replicas (the LeaseKeeper given as AttachOptions.duties): a task runs on the replica holding
 *   the lease `task:<bot>:<id>`. Every replica wants the lease of every unfinished row it sees on
 *   its sweep; the keeper takes it only when it is free or expired, i.e. its owner finished or
 *   died, and the `acquired` event starts (or resumes or fails) the task. So a task runs once, and
 *   a dead replica's tasks are taken over within a lease ttl.
 *
 * Cancel: a `task-cancel` from the requester writes a cancel row in its own transaction; the owner
 * stops the handler (at once when local, else on its next sweep) and ends the task `canceled`.
 * From anyone else, or for an unknown task, it is dropped (counted in `counters`, logged at debug).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { TaskCancelContent } from '../relay/content-types.js';
import { ConfigError } from '../relay/errors.js';
import type { BotSelf } from './context.js';
import { TOMBSTONE } from './data.js';
import { postTarget, type PostFn } from './open-replies.js';
import { parseArgs } from './parser.js';
import type { PlannedCommand } from './scan.js';
import type { JobSource } from './scheduler.js';
import { TaskAdmission, taskAdmitLeaseName, type AdmissionLeases } from './task-admission.js';
import { TaskRun } from './task-run.js';
import {
  DEFAULT_TASK_LIMITS,
  decodeTaskRow,
  encodeTaskRow,
  TASK_CANCELED,
  TASK_LIMIT_TOTAL,
  TASK_LIMIT_USER,
  TASK_RESTART_FAILED,
  taskCancelKey,
  taskKey,
  taskLeaseName,
  taskMessage,
  taskPrefix,
  type TaskLimits,
  type TaskRow,
} from './task-types.js';
import type { UpdateContext } from './update-context.js';

/** A submission whose commit did not come within this long is no longer counted (ms). */
const PENDING_LAPSE_MS = 60_000;

/** What tasks need of a LeaseKeeper (framework/relay/lease-keeper.ts); found on AttachOptions.duties. */
export interface TaskLeases {
  readonly holder: string;
  want(name: string): void;
  drop(name: string): Promise<void>;
  owns(name: string): boolean;
  on(event: 'acquired' | 'lost', fn: (name: string) => void): unknown;
  off(event: 'acquired' | 'lost', fn: (name: string) => void): unknown;
}

/** Whether `duties` is a LeaseKeeper-like object that can hold per-task leases. */
export function taskLeasesOf(duties: unknown): TaskLeases | undefined {
  const d = duties as Partial<TaskLeases> | undefined;
  return d && typeof d.want === 'function' && typeof d.drop === 'function' && typeof d.holder === 'string'
    ? (d as TaskLeases)
    : undefined;
}

/** Drops of `task-cancel` messages, by reason. */
export interface TaskCounters {
  /** A `task-cancel` from someone other than the task's requester. */
  cancel_not_requester: number;
  /** A `task-cancel` naming no unfinished task of this bot. */
  cancel_unknown_task: number;
}

/** What TaskManager.attach() needs. */
export interface TaskAttachment {
  readonly store: JobSource;
  readonly post: PostFn;
  readonly self: () => BotSelf;
  readonly leases: TaskLeases | undefined;
  /**
   * With replicas: the lease store the admission lease is taken in (task-admission.ts), so the
   * limits hold across replicas. Without it each replica checks only what it sees committed.
   */
  readonly admission?: AdmissionLeases | undefined;
  readonly connected: () => boolean | undefined;
}

/** The tasks of one runtime (see the module comment). */
export class TaskManager {
  readonly counters: TaskCounters = { cancel_not_requester: 0, cancel_unknown_task: 0 };
  private readonly limits: Required<TaskLimits>;
  private readonly commands: ReadonlyMap<string, PlannedCommand>;
  private readonly running = new Map<string, { run: TaskRun; done: Promise<void> }>();
  /**
   * Submitted in a transaction not yet committed (id → requester and when): counted against the
   * limits meanwhile; an entry whose commit never came (the message failed) lapses after a minute.
   */
  private readonly pending = new Map<string, { requester: string; at: number }>();
  private readonly wanted = new Set<string>();
  private readonly processId = randomUUID();
  private at: TaskAttachment | undefined;
  private admission: TaskAdmission | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private readonly onAcquired = (name: string): void => this.acquired(name);
  private readonly onLost = (name: string): void => this.lost(name);

  constructor(
    private readonly bot: string,
    commands: readonly PlannedCommand[],
    limits: TaskLimits | undefined,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {
    this.limits = { ...DEFAULT_TASK_LIMITS, ...limits };
    for (const [k, v] of Object.entries(this.limits)) {
      if (!Number.isSafeInteger(v) || v <= 0)
        throw new ConfigError(`tasks.${k} must be a positive whole number, got ${String(v)}`);
    }
    this.commands = new Map(commands.filter((c) => c.task).map((c) => [c.name, c]));
  }

  /** Whether the bot has task commands at all. */
  get enabled(): boolean {
    return this.commands.size > 0;
  }

  /** Starts recovery and, with leases, the sweep. */
  attach(at: TaskAttachment): void {
    if (!this.enabled) return;
    this.at = at;
    this.admission = new TaskAdmission(
      at.leases && at.admission,
      taskAdmitLeaseName(this.bot),
      `${at.leases?.holder ?? 'process'}/${this.processId}`,
      this.log,
    );
    at.leases?.on('acquired', this.onAcquired);
    at.leases?.on('lost', this.onLost);
    this.schedule(0);
  }

  /** Stops the sweep and every local run (their rows stay for the next owner) and waits for them. */
  async stop(): Promise<void> {
    clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    const at = this.at;
    this.at = undefined;
    at?.leases?.off('acquired', this.onAcquired);
    at?.leases?.off('lost', this.onLost);
    await this.sweeping;
    await this.admission?.close();
    for (const { run } of this.running.values()) run.stop('stop');
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
    for (const name of this.wanted) await at?.leases?.drop(name).catch(() => undefined);
    this.wanted.clear();
  }

  /** A task command's request, in its transaction: limits, the row, the `submitted` answer. */
  async submit(cmd: PlannedCommand, ctx: UpdateContext): Promise<void> {
    const at = this.at;
    if (!at) {
      throw new ConfigError(`/${cmd.name} is a task: attach the runtime with attach(client, { store })`);
    }
    const message = ctx.message;
    if (!message) return;
    const admission = this.admission;
    // Across replicas the count below must include every other replica's admitted rows.
    if (admission && !(await admission.enter())) return void ctx.reply(TASK_LIMIT_TOTAL);
    let row: TaskRow | undefined;
    try {
      row = await this.admit(cmd, ctx, at);
    } finally {
      if (row === undefined) admission?.done();
    }
    if (row === undefined) return;
    const admitted = row;
    const start = (): void => {
      // The lease's work is done once the row is committed: another replica's count sees it.
      if (this.pending.delete(admitted.id)) admission?.done();
      this.begin(admitted);
    };
    // Only once the request (and with it the row) committed: a failed commit runs the message again.
    if (ctx.run.deps.afterCommit) ctx.run.deps.afterCommit(message, start);
    else setImmediate(start);
  }

  /** Checks the limits, then writes the row and the `submitted` answer; the row, or undefined when refused. */
  private async admit(
    cmd: PlannedCommand,
    ctx: UpdateContext,
    at: TaskAttachment,
  ): Promise<TaskRow | undefined> {
    const message = ctx.message!;
    const rows = await this.unfinished(at.store);
    for (const [k, v] of this.pending) {
      if (this.now() - v.at <= PENDING_LAPSE_MS) continue;
      this.pending.delete(k);
      this.admission?.done();
    }
    const mine = rows.filter((r) => r.requester === ctx.sender).length;
    const pendingMine = [...this.pending.values()].filter((s) => s.requester === ctx.sender).length;
    if (rows.length + this.pending.size >= this.limits.total) return void ctx.reply(TASK_LIMIT_TOTAL);
    if (mine + pendingMine >= this.limits.perUser) return void ctx.reply(TASK_LIMIT_USER);
    const id = randomUUID();
    const now = this.now();
    const row: TaskRow = {
      id,
      conversation: ctx.conversation,
      to: postTarget(ctx.conversation),
      replyTo: message.content.id ?? id,
      requester: ctx.sender,
      command: cmd.name,
      argsText: ctx.argsText,
      state: 'submitted',
      createdAt: now,
      updatedAt: now,
    };
    ctx.tx.saveData(taskKey(this.bot, id), encodeTaskRow(row));
    ctx.run.gate.push(taskMessage(row, 'submitted', `/${cmd.name} accepted`));
    this.pending.set(id, { requester: ctx.sender, at: now });
    return row;
  }

  /** A `task-cancel` message, in its transaction. */
  async cancel(ctx: UpdateContext): Promise<void> {
    const content = ctx.message?.content as TaskCancelContent;
    const id = content.replyTo;
    const row = decodeTaskRow((await ctx.tx.loadData(taskKey(this.bot, id))) ?? TOMBSTONE);
    if (!row) {
      this.counters.cancel_unknown_task++;
      ctx.log.debug({ task: id }, 'task-cancel dropped: no such unfinished task');
      return;
    }
    if (row.requester !== ctx.sender) {
      this.counters.cancel_not_requester++;
      ctx.log.debug({ task: id }, 'task-cancel dropped: not from the requester');
      return;
    }
    ctx.tx.saveData(taskCancelKey(this.bot, id), JSON.stringify({ at: this.now() }));
    const stop = (): void => this.running.get(id)?.run.stop('cancel');
    if (ctx.run.deps.afterCommit && ctx.message) ctx.run.deps.afterCommit(ctx.message, stop);
    else setImmediate(stop);
  }

  /** A new task whose row just committed: run it here, or (replicas) where its lease lands. */
  private begin(row: TaskRow): void {
    const leases = this.at?.leases;
    if (!leases) return void this.start(row, false);
    // The `acquired` event starts it; a replica that saw the row first may win the lease instead.
    this.want(taskLeaseName(this.bot, row.id));
  }

  private want(name: string): void {
    if (this.wanted.has(name)) return;
    this.wanted.add(name);
    this.at?.leases?.want(name);
  }

  private async release(id: string): Promise<void> {
    const name = taskLeaseName(this.bot, id);
    if (!this.wanted.delete(name)) return;
    await this.at?.leases?.drop(name).catch((err: unknown) => this.log.warn({ err }, 'lease drop failed'));
  }

  private acquired(name: string): void {
    const prefix = taskLeaseName(this.bot, '');
    if (!name.startsWith(prefix)) return;
    const id = name.slice(prefix.length);
    if (this.running.has(id)) return;
    void this.takeOver(id).catch((err: unknown) =>
      this.log.error({ err, task: id }, 'task take-over failed'),
    );
  }

  private lost(name: string): void {
    const prefix = taskLeaseName(this.bot, '');
    if (name.startsWith(prefix)) this.running.get(name.slice(prefix.length))?.run.stop('lost');
  }

  /** We hold the lease of task `id`: start, resume, fail or cancel it, or let the lease go. */
  private async takeOver(id: string): Promise<void> {
    const at = this.at;
    if (!at) return;
    const [row] = (await at.store.listConversationData(taskKey(this.bot, id)))
      .filter((r) => r.conversationId === taskKey(this.bot, id))
      .map((r) => decodeTaskRow(r.json));
    if (!row) return void (await this.release(id));
    await this.recover(row, at);
  }

  /** A row no live run owns: what its command's restart policy says. */
  private async recover(row: TaskRow, at: TaskAttachment): Promise<void> {
    if (this.running.has(row.id)) return;
    const canceled = (await at.store.listConversationData(taskCancelKey(this.bot, row.id))).length > 0;
    const cmd = this.commands.get(row.command);
    const restart = row.state === 'working';
    if (!canceled && cmd && (!restart || cmd.task?.onRestart === 'resume')) {
      this.start(row, restart);
      return;
    }
    const [state, text] = canceled
      ? (['canceled', TASK_CANCELED] as const)
      : (['failed', cmd ? TASK_RESTART_FAILED : `/${row.command} is no longer a task of this bot`] as const);
    await at.post(row.to, taskMessage(row, state, text), [
      { conversationId: taskKey(this.bot, row.id), json: TOMBSTONE },
      { conversationId: taskCancelKey(this.bot, row.id), json: TOMBSTONE },
    ]);
    this.log.info({ task: row.id, state }, 'ended a task left over by a restart');
    await this.release(row.id);
  }

  private start(row: TaskRow, resumed: boolean): void {
    const at = this.at;
    const cmd = this.commands.get(row.command);
    if (!at || !cmd?.handler || this.running.has(row.id)) return;
    let args = {};
    try {
      if (cmd.args) args = parseArgs(cmd.name, cmd.args, row.argsText);
    } catch (err) {
      this.log.warn({ err, task: row.id }, 'a resumed task no longer parses');
    }
    const run = new TaskRun({
      bot: this.bot,
      row,
      owner: at.leases?.holder ?? this.processId,
      resumed,
      handler: cmd.handler,
      args,
      post: at.post,
      self: at.self(),
      log: this.log,
      now: this.now,
      progressEveryMs: this.limits.progressEveryMs,
      cancelGraceMs: this.limits.cancelGraceMs,
    });
    const done = run.run().finally(async () => {
      this.running.delete(row.id);
      await this.release(row.id);
    });
    this.running.set(row.id, { run, done });
  }

  private async unfinished(store: JobSource): Promise<TaskRow[]> {
    const rows = await store.listConversationData(taskPrefix(this.bot));
    return rows.map((r) => decodeTaskRow(r.json)).filter((r): r is TaskRow => r !== undefined);
  }

  private schedule(ms: number): void {
    if (!this.at) return;
    this.sweepTimer = setTimeout(() => {
      this.sweeping = this.sweep()
        .catch((err: unknown) => this.log.warn({ err }, 'task sweep failed'))
        .finally(() => {
          this.sweeping = undefined;
          // One process: the rows left over are recovered once; later ones are all its own.
          if (this.at?.leases) this.schedule(this.limits.sweepMs);
        });
    }, ms);
    this.sweepTimer.unref();
  }

  private async sweep(): Promise<void> {
    const at = this.at;
    if (!at) return;
    if (at.connected() === false) {
      if (!at.leases) this.schedule(100);
      return;
    }
    const rows = await this.unfinished(at.store);
    if (!at.leases) {
      for (const row of rows) if (!this.pending.has(row.id)) await this.recover(row, at);
      return;
    }
    const live = new Set(rows.map((r) => taskLeaseName(this.bot, r.id)));
    for (const name of live) this.want(name);
    for (const name of [...this.wanted]) {
      const id = name.slice(taskLeaseName(this.bot, '').length);
      if (!live.has(name) && !this.running.has(id) && !this.pending.has(id)) await this.release(id);
    }
    // Cancel requests that reached another replica.
    const cancels = await at.store.listConversationData(taskCancelKey(this.bot, ''));
    for (const c of cancels) this.running.get(c.conversationId.split(':').pop()!)?.run.stop('cancel');
  }
}
