/**
 * The shell under the group steps (steps/group-*.ts): the only holder of the group's lanes, timers,
 * topic map and background work. A step returns a write; the shell commits it (compare-and-set) and
 * wipes the keys it made unnecessary; then, outside the lane (after-commit.ts), the outbox publishes
 * the committed rows and once the broker acknowledged them the write's events go out and its
 * follow-ups run.
 */
import type { Logger } from 'pino';
import { AfterCommit, allRan } from './after-commit.js';
import type { TopicId, UserIdHex } from './brand.js';
import type { ConversationStates } from './conversation-states.js';
import type { DropReason } from './drops.js';
import { CodecError, ProtocolError, VerificationError } from './errors.js';
import type { GroupRecords, Loaded } from './group-records.js';
import { LaneRetry } from './lane-retry.js';
import { retryStale } from './retry-stale.js';
import type { FetchedPeerBundle, GroupEvent, GroupReceivedMessage } from './group-types.js';
import type { TransactionalHandler } from './handler.js';
import type { KeyedSerialQueue } from './keyed-queue.js';
import * as mls from './mls/index.js';
import type { OutboxRowCheck } from './outbox-quarantine.js';
import type { RelayStore } from './store.js';
import type { GroupFollowUp, GroupStepContext, GroupWrite } from './steps/group-write.js';
import { groupTopic } from './topics.js';
import type { WelcomeQuota } from './welcome-quota.js';

/** The client's parts the group shell drives: store, transport, bundles, outbox and its events. */
export interface GroupShellDeps {
  ctx: GroupStepContext;
  store: RelayStore;
  states: ConversationStates;
  queue: KeyedSerialQueue;
  log: Logger;
  quota: WelcomeQuota;
  maxEnvelopeBytes: number;
  maxTreeNodes: number;
  commitDelayMs: number;
  /** User ids allowed to invite us; undefined lets anyone (within the Welcome quotas). */
  allowInvitesFrom: ReadonlySet<string> | undefined;
  transport: {
    subscribe(topic: string, opts: { qos: 1; noLocal: true; shared: true }): Promise<void>;
    unsubscribe(topic: string): Promise<void>;
  };
  bundles: { fetch(peer: UserIdHex): Promise<FetchedPeerBundle>; scheduleRepublish(force: boolean): void };
  outbox: { flush(): Promise<void> };
  outboxRowError: OutboxRowCheck;
  /** The client's emitter, for 'group', 'message' and 'error' events. */
  events: {
    emit(event: 'group', e: GroupEvent): unknown;
    emit(event: 'message', m: GroupReceivedMessage): unknown;
  };
  fail(e: unknown): void;
  /** The transactional handler currently set. */
  handler(): TransactionalHandler | undefined;
}

export abstract class GroupLanes {
  /** topic id → group id, for every group we are in. */
  protected readonly topics = new Map<string, string>();
  private readonly commitTimers = new Map<string, NodeJS.Timeout>();
  private readonly background = new Set<Promise<unknown>>();
  /** Per group topic: publishing, events and follow-ups of each commit, in commit order. */
  private readonly afterCommit: AfterCommit;
  protected running = false;
  /** Retries of a topic message that failed, held in its lane (lane-retry.ts). */
  protected readonly laneRetry: LaneRetry;

  protected constructor(
    protected readonly deps: GroupShellDeps,
    protected readonly records: GroupRecords,
  ) {
    this.afterCommit = new AfterCommit({ publish: () => deps.outbox.flush(), fail: (e) => deps.fail(e) });
    this.laneRetry = new LaneRetry(deps.log.child({ lane: 'group' }), () => this.running);
  }

  // The follow-ups' work, done by the subclasses with steps of their own.
  protected abstract commitPendingNow(groupId: string): Promise<void>;
  abstract carryOut(groupIds: Iterable<string>): void;
  abstract updateKeys(groupId: string): Promise<void>;
  protected abstract replaceCommitter(groupId: string): Promise<void>;
  protected abstract fellBehind(groupId: string): void;

  /** Commits a step's write; only then may the keys it no longer needs be erased. */
  protected async commit(write: GroupWrite): Promise<void> {
    await this.records.save(write.commit, write.decoded);
    for (const c of write.consumed) mls.wipeConsumed(c);
  }

  /**
   * In the group's lane: commits the write and queues what follows it (publishing, then its events
   * and `then`, then its follow-ups) into `settled`, for a caller that waits on it outside the lane.
   */
  protected async keep(
    topicId: string,
    write: GroupWrite,
    settled: Promise<void>[],
    then?: () => void,
  ): Promise<void> {
    await this.commit(write);
    this.queueAfter(topicId, write, settled, then);
  }

  /** Queues what follows a write's commit; called in the lane right after it, so in commit order. */
  protected queueAfter(
    topicId: string,
    write: GroupWrite,
    settled: Promise<void>[],
    then?: () => void,
  ): void {
    settled.push(
      this.afterCommit.run(topicId, (write.commit.outbox?.length ?? 0) > 0, async () => {
        for (const e of write.events) this.deps.events.emit('group', e);
        then?.();
        await this.after(write);
      }),
    );
  }

  /**
   * Runs a step on the group as its lane sees it, again when another writer moved the record on;
   * `keep` commits a write. Our own calls wait for the broker and the events; the follow-ups run
   * even when publishing failed, whose error is then thrown.
   */
  protected async inLane(
    groupId: string,
    step: (loaded: Loaded, keep: (w: GroupWrite | undefined) => Promise<void>) => Promise<void>,
  ): Promise<void> {
    const first = await this.records.require(groupId);
    const topicId = first.record.topicId;
    const settled: Promise<void>[] = [];
    const keep = (w: GroupWrite | undefined): Promise<void> =>
      w ? this.keep(topicId, w, settled) : Promise.resolve();
    await this.lane(topicId, () => retryStale(async () => step(await this.records.require(groupId), keep)));
    await allRan(settled);
  }

  /** Resolves once the work queued after every commit so far has run. */
  settled(): Promise<void> {
    return this.afterCommit.idle();
  }

  /** After the commit, its publishing and its events: the follow-ups. */
  private async after(write: GroupWrite): Promise<void> {
    for (const f of write.followUps) await this.followUp(f);
  }

  private async followUp(f: GroupFollowUp): Promise<void> {
    switch (f.kind) {
      case 'commit':
        return this.scheduleCommit(f.groupId, f.delayMs);
      case 'carry-out':
        return this.carryOut(f.groupIds);
      case 'update-keys':
        return this.track(this.updateKeys(f.groupId));
      case 'replace-committer':
        return this.track(this.replaceCommitter(f.groupId));
      case 'rejoin':
        return this.fellBehind(f.groupId);
      case 'forget':
        return this.forget(f.groupId, f.topicId, f.reason);
      case 'republish':
        // Outside the lane: publishing our bundle waits on the broker.
        setImmediate(() => this.deps.bundles.scheduleRepublish(false));
        return;
    }
  }

  /** §9: a removed member deletes the group state and unsubscribes. */
  private async forget(groupId: string, topicId: string, reason: 'removed' | 'left'): Promise<void> {
    this.topics.delete(topicId);
    this.records.forget(groupId);
    const timer = this.commitTimers.get(groupId);
    if (timer) clearTimeout(timer);
    this.commitTimers.delete(groupId);
    await this.deps.transport.unsubscribe(this.topicOf(topicId)).catch(() => undefined);
    this.deps.events.emit('group', { kind: 'left', groupId, topicId, reason });
  }

  /** Batches proposals for `commitDelayMs` (well within §9's 2 s), then commits them all. */
  protected scheduleCommit(groupId: string, delayMs = this.deps.commitDelayMs): void {
    if (!this.running || this.commitTimers.has(groupId)) return;
    const timer = setTimeout(() => {
      this.commitTimers.delete(groupId);
      this.track(this.commitPendingNow(groupId));
    }, delayMs);
    timer.unref();
    this.commitTimers.set(groupId, timer);
  }

  protected track(work: Promise<unknown>): void {
    const p = work.catch((e) => this.deps.fail(e)).finally(() => this.background.delete(p));
    this.background.add(p);
  }

  async stop(): Promise<void> {
    this.running = false;
    this.laneRetry.wakeAll();
    for (const t of this.commitTimers.values()) clearTimeout(t);
    this.commitTimers.clear();
    await this.afterCommit.idle();
    await Promise.allSettled([...this.background]);
  }

  protected lane<T>(topicId: string, work: () => Promise<T>): Promise<T> {
    return this.deps.queue.run(`g:${topicId}`, work);
  }

  protected topicOf(topicId: string): string {
    return groupTopic(this.deps.ctx.seal.prefix, topicId as TopicId);
  }

  // MQTT 5 No Local: members never see their own group messages (§9). Shared among replicas (a
  // transport with a share group), No Local is not allowed and our own messages do arrive.
  protected subscribe(topicId: string): Promise<void> {
    return this.deps.transport.subscribe(this.topicOf(topicId), { qos: 1, noLocal: true, shared: true });
  }

  /**
   * What a hostile or broken input provokes (codec, verification, protocol errors, also from our
   * own sealing or committing on its behalf) is a drop. Storage and transport failures propagate:
   * the message is then not acknowledged and comes again, so nothing is lost.
   */
  protected async dropOnInputError(
    reason: DropReason,
    work: () => Promise<DropReason | undefined>,
  ): Promise<DropReason | undefined> {
    try {
      return await work();
    } catch (e) {
      if (!(e instanceof CodecError || e instanceof VerificationError || e instanceof ProtocolError)) throw e;
      this.deps.log.warn({ err: e.message }, 'group input failed; dropped');
      return reason;
    }
  }
}
