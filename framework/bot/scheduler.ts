/**
 * Scheduled messages that survive restarts. A handler schedules one with ctx.schedule(): the job is
 * written inside the message's transaction under
 *
 *   jobs:<bot>:<due time in ms, 15 digits>:<id>   →   {"to":"<user id>","text":"…","dueAt":<ms>}
 *
 * so it exists exactly when the message that asked for it was committed. The runtime owns one
 * JobScheduler, started by attach() and stopped by detach(). Every pollMs it lists the bot's jobs
 * and sends those that are due with RelayClient.send(to, text, { data: [{ key, 'null' }] }): the
 * tombstone (data.ts) commits together with the outgoing message, so a crash can neither lose the
 * reminder nor send it twice. A job whose time passed while the bot was down goes out on the first
 * pass after start.
 *
 * Replicas of one bot share the store, so only the one that owns the `scheduler` duty (a lease,
 * framework/relay/duties.ts) sends: `owns` is asked before each pass and before each send.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ArgumentError } from '../relay/errors.js';
import { TOMBSTONE } from './data.js';

/** How often the scheduler looks for due jobs (ms). */
export const DEFAULT_POLL_MS = 1000;
/** Due times are zero-padded so the keys sort by time (15 digits reach the year 33658). */
const DUE_DIGITS = 15;
/** A job that fails to send is retried after 1 s, 2 s, 4 s … up to this. */
const MAX_RETRY_MS = 300_000;

/** A message to send later (ctx.schedule): recipient, text and due time. */
export interface ScheduledJob {
  /** Recipient user id (32 lowercase hex). */
  readonly to: string;
  readonly text: string;
  /** When it is due, in ms since the epoch (the runtime's clock). */
  readonly dueAt: number;
}

/** Where the scheduler reads jobs: a RelayStore, or MemoryDataStore in unit tests. */
export interface JobSource {
  listConversationData(prefix: string): Promise<Array<{ conversationId: string; json: string }>>;
}

/** How the scheduler sends a due job's message. */
export type JobSend = (
  to: string,
  text: string,
  options: { data: Array<{ conversationId: string; json: string }> },
) => Promise<unknown>;

/** The conversation-data key prefix under which a bot's scheduled jobs are stored. */
export const jobPrefix = (bot: string): string => `jobs:${bot}:`;

/** The storage key of one job: the bot's prefix, then the zero-padded due time, so keys sort by time. */
export function jobKey(bot: string, dueAt: number, id: string = randomUUID()): string {
  if (!Number.isSafeInteger(dueAt) || dueAt < 0)
    throw new ArgumentError(`a job's due time must be a whole number of ms, got ${dueAt}`);
  return `${jobPrefix(bot)}${String(dueAt).padStart(DUE_DIGITS, '0')}:${id}`;
}

/** A job as the JSON stored under its key. */
export function encodeJob(job: ScheduledJob): string {
  return JSON.stringify({ to: job.to, text: job.text, dueAt: job.dueAt });
}

/** undefined for a tombstone or anything that is not a job. */
export function decodeJob(json: string): ScheduledJob | undefined {
  if (json === TOMBSTONE) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { to, text, dueAt } = v as Record<string, unknown>;
  if (typeof to !== 'string' || typeof text !== 'string' || typeof dueAt !== 'number') return undefined;
  return { to, text, dueAt };
}

/** JobScheduler's options: the key prefix, where jobs are read, how they are sent, the clock, the poll interval, the logger. */
export interface JobSchedulerOptions {
  /** e.g. jobPrefix('notes') */
  prefix: string;
  source: JobSource;
  send: JobSend;
  /** ms since the epoch. */
  now: () => number;
  pollMs?: number;
  log: Logger;
  /** Passes are skipped while this is false (the client is not connected yet). */
  ready?: () => boolean;
  /**
   * Whether this process owns the scheduler duty now (replicas: a lease); passes send nothing while
   * it is false. Default: always (one process).
   */
  owns?: () => boolean;
}

/** Sends scheduled jobs when they fall due, deleting each after its send, retrying failures with backoff. */
export class JobScheduler {
  private readonly pollMs: number;
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<number> | undefined;
  private running = false;
  /** Set by stop(): a pass in progress finishes the send it is in and sends nothing more. */
  private stopping = false;
  /** In memory only: after a restart every failed job is simply tried again. */
  private readonly retry = new Map<string, { at: number; delayMs: number }>();
  private readonly malformed = new Set<string>();

  constructor(private readonly options: JobSchedulerOptions) {
    const poll = options.pollMs ?? DEFAULT_POLL_MS;
    if (!Number.isSafeInteger(poll) || poll <= 0)
      throw new ArgumentError(`scheduler pollMs must be a positive whole number, got ${poll}`);
    this.pollMs = poll;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopping = false;
    this.arm(0);
  }

  /** Stops polling and waits for a pass in progress (its sends complete or fail). */
  async stop(): Promise<void> {
    this.running = false;
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.pass?.catch(() => undefined);
  }

  /**
   * One pass: sends every due job, oldest first, one at a time. Returns how many were sent. Runs
   * at most one pass at a time; a call during a pass waits for that pass.
   */
  tick(): Promise<number> {
    this.pass ??= this.sendDue().finally(() => (this.pass = undefined));
    return this.pass;
  }

  private arm(delayMs: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.tick()
        .catch((err: unknown) => this.options.log.error({ err }, 'scheduler pass failed'))
        .finally(() => this.arm(this.pollMs));
    }, delayMs);
    // The client's socket keeps a running bot alive; a forgotten scheduler must not.
    this.timer.unref();
  }

  private async sendDue(): Promise<number> {
    const { options } = this;
    if (options.ready && !options.ready()) return 0;
    const owns = options.owns ?? (() => true);
    if (!owns()) return 0;
    const rows = await options.source.listConversationData(options.prefix);
    const now = options.now();
    const due: Array<{ key: string; job: ScheduledJob }> = [];
    for (const { conversationId: key, json } of rows) {
      if (json === TOMBSTONE) continue;
      const job = decodeJob(json);
      if (!job) {
        if (!this.malformed.has(key)) options.log.warn({ job: key }, 'skipping a malformed scheduled job');
        this.malformed.add(key);
        continue;
      }
      const retry = this.retry.get(key);
      if (job.dueAt <= now && (!retry || retry.at <= now)) due.push({ key, job });
    }
    due.sort((a, b) => a.job.dueAt - b.job.dueAt || (a.key < b.key ? -1 : 1));
    let sent = 0;
    for (const { key, job } of due) {
      // A lease lost mid-pass: the new owner sends the rest (each job's tombstone commits with it).
      if (this.stopping || !owns()) break;
      try {
        await options.send(job.to, job.text, { data: [{ conversationId: key, json: TOMBSTONE }] });
        this.retry.delete(key);
        sent++;
      } catch (err) {
        const delayMs = Math.min(MAX_RETRY_MS, (this.retry.get(key)?.delayMs ?? 500) * 2);
        this.retry.set(key, { at: options.now() + delayMs, delayMs });
        options.log.warn({ err, job: key, retryInMs: delayMs }, 'could not send a scheduled job');
      }
    }
    return sent;
  }
}
