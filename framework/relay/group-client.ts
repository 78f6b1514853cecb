/**
 * N-way groups (PROTOCOL.md §9) for RelayClient: creating groups, membership changes through the
 * committer, group Welcomes and GROUP_REJOIN on the inbox, and PrivateMessages on the group topic.
 *
 * Every group has one lane (keyed by its topic) in the client's serial queue, so its MLS state moves
 * one message at a time; each step commits the new state, its dedupe record and what it publishes
 * in one store transaction, and the outbox publishes only after that.
 */
import { randomUUID } from 'node:crypto';
export type * from './group-types.js';
import { GroupChanges, runHandler } from './handler.js';
import { inboxRow, sealWithPow } from './direct-seal.js';
import type { StepContext } from './steps/context.js';
import { encryptReplies } from './steps/encrypt-replies.js';
import { groupMessage, readGroupPayload } from './steps/group-message.js';
import { admitWelcome } from './welcome-admission.js';
import type { GroupId, TopicId, UnixSeconds, UserIdHex } from './brand.js';
import { fromHex, toHex } from './bytes.js';
import { encodeContent, tryDecodeContent } from './content.js';
import type { DropReason } from './drops.js';
import { encodeGroupPayload, MAX_GROUP_NAME_BYTES } from './envelope.js';
import { ArgumentError, CodecError, ProtocolError, VerificationError } from './errors.js';
import {
  newGroupMeta,
  parseGroupMeta,
  serializeGroupMeta,
  type GroupIntent,
  type GroupMeta,
} from './group-meta.js';
import { signSealedSenderKey, userIdFromHex, userIdToHex } from './identity.js';
import { digestHex, replayEntry, type OpenedEnvelope } from './inbound-envelope.js';
import { retryStale } from './retry-stale.js';
import { ConversationStates } from './conversation-states.js';
import { GroupRecords, updatedRecord, type Loaded } from './group-records.js';
import { DEFAULT_POW_BITS, MAX_MINED_POW_BITS, MSG_TYPE, PADDING_BLOCK } from './labels.js';
import * as mls from './mls/index.js';
import { memberIsBehind, signRejoin, verifyRejoin } from './rejoin.js';
import {
  judgeGroupWelcome,
  newRejoinRequest,
  REJOIN_REQUEST_SECONDS,
  rejoinRequestOpen,
} from './rejoin-request.js';
import {
  commitPlan,
  committerRefreshDue,
  deferredAfter,
  MAX_WELCOME_POW_BITS,
  type CommitExtras,
  type CommitPlan,
  type WantedAdd,
  mayCommit,
  memberRefreshDue,
  noteCommit,
  refreshMayBeDue,
  withIntent,
} from './group-policy.js';
import type {
  FetchedPeerBundle,
  GroupHost,
  GroupInfo,
  GroupOptions,
  GroupReceivedMessage,
  HandlerData,
} from './group-types.js';
import type { GroupRecord, InboundCommit, OutboxRecord, PeerRecord } from './store.js';
import { groupTopic, topicIdForGroup } from './topics.js';

const DAY = 86_400;
/** A group message left unread this long by an offline member is of no use to it any more. */
const GROUP_MESSAGE_EXPIRY_SECONDS = 7 * DAY;
const REJOIN_INTERVAL_SECONDS = 600;
/**
 * Adds left for the next epoch are committed after §9's longest batching delay, so that the
 * previous commit's joiners have had time to subscribe and do not miss the commit.
 */
const DEFERRED_ADDS_DELAY_MS = 2000;
/** How often an unfulfilled membership change is proposed again before we give up on it. */
const MAX_INTENT_ATTEMPTS = 3;
/** §9: a proposal uncommitted this long lets any member propose the committer's Remove. */
const STALE_PROPOSAL_SECONDS = 7 * DAY;

const hexId = (id: Uint8Array): UserIdHex => userIdToHex(id as never);

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

const wantedAdd = (b: FetchedPeerBundle): WantedAdd => ({
  userId: b.record.userId as UserIdHex,
  keyPackage: b.keyPackage,
});

export class GroupCoordinator {
  private readonly records: GroupRecords;
  private readonly stepCtx: StepContext;
  /** topic id → group id, for every group we are in. */
  private readonly topics = new Map<string, string>();
  private readonly commitTimers = new Map<string, NodeJS.Timeout>();
  private readonly rejoining = new Set<string>();
  private readonly background = new Set<Promise<unknown>>();
  private running = false;
  private readonly maxMembers: number;
  private readonly maxTreeNodes: number;
  private readonly commitDelayMs: number;
  private readonly allowInvitesFrom: Set<string> | undefined;

  constructor(
    private readonly host: GroupHost,
    options: GroupOptions = {},
    states: ConversationStates = new ConversationStates(host.store),
  ) {
    this.records = new GroupRecords(host.store, host.clock, states);
    this.stepCtx = { mls: host.mls, selfId: host.identity.userId, clock: host.clock };
    this.maxMembers = options.maxMembers ?? 250;
    this.maxTreeNodes = options.maxTreeNodes ?? 2047;
    this.commitDelayMs = Math.min(options.commitDelayMs ?? 200, 2000);
    if (this.maxMembers < 2 || this.maxMembers > 250) {
      throw new ArgumentError('groups.maxMembers must be between 2 and 250 (PROTOCOL.md §9)');
    }
    this.allowInvitesFrom =
      options.allowInvitesFrom && new Set(options.allowInvitesFrom.map((u) => userIdToHex(userIdFromHex(u))));
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * Loads which topics are ours. Runs before connecting: a persistent broker session delivers
   * queued group messages right after CONNACK, and they must not be mistaken for strangers'.
   */
  async restore(): Promise<void> {
    this.running = true;
    for (const g of await this.host.store.listGroupSummaries()) this.topics.set(g.topicId, g.groupId);
  }

  /** Re-subscribes every stored group (PROTOCOL.md §9 "Delivery") and resumes pending commits. */
  async start(): Promise<void> {
    // Summaries, not states: an MLS state is read only for a group whose proposals wait (§10).
    const groups = await this.host.store.listGroupSummaries();
    const topics = groups.map((g) => this.topicOf(g.topicId));
    for (let i = 0; i < topics.length; i += 100) {
      await Promise.all(topics.slice(i, i + 100).map((t) => this.host.subscribe(t)));
    }
    for (const g of groups) {
      const meta = parseGroupMeta(g.meta, 0);
      const deferred = (meta.deferredAdds ?? []).length > 0;
      if (meta.pendingSince === undefined && !deferred) continue;
      const loaded = await this.records.load(g.groupId);
      if (loaded && mayCommit(loaded.state) && (mls.hasPendingProposals(loaded.state) || deferred))
        this.scheduleCommit(g.groupId);
    }
    // Membership changes committed before a restart but not yet carried out.
    this.carryOut(groups.filter((g) => parseGroupMeta(g.meta, 0).intents.length > 0).map((g) => g.groupId));
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const t of this.commitTimers.values()) clearTimeout(t);
    this.commitTimers.clear();
    await Promise.allSettled([...this.background]);
  }

  /**
   * The time-driven rules of §9, run with the client's housekeeping (at start-up and every 10
   * minutes): key refresh after 7 days even in a quiet group, and a committer that left a proposal
   * waiting 7 days is proposed for removal, so the next member takes over.
   */
  async housekeeping(): Promise<void> {
    const now = this.host.clock.now();
    const every = this.host.updateEveryMessages;
    for (const summary of await this.host.store.listGroupSummaries()) {
      const summaryMeta = parseGroupMeta(summary.meta, now);
      const stale =
        summaryMeta.pendingSince !== undefined && now - summaryMeta.pendingSince >= STALE_PROPOSAL_SECONDS;
      // Nothing can be due: the MLS state is not read.
      if (!stale && !refreshMayBeDue(summaryMeta, now, every)) continue;
      const loaded = await this.records.load(summary.groupId);
      if (!loaded) continue;
      const { record, state, meta } = loaded;
      if (mls.isCommitter(state)) {
        if (committerRefreshDue(meta, now, every)) this.scheduleCommit(record.groupId);
      } else if (meta.pendingSince !== undefined && now - meta.pendingSince >= STALE_PROPOSAL_SECONDS) {
        this.track(this.replaceCommitter(record.groupId));
      } else if (memberRefreshDue(state, meta, now, every)) {
        this.track(this.updateKeys(record.groupId));
      }
    }
  }

  /** §9: any member may propose the Remove of a committer that left proposals waiting 7 days. */
  private async replaceCommitter(groupId: string): Promise<void> {
    const first = await this.records.require(groupId);
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        const { record, state, meta } = await this.records.require(groupId);
        const now = this.host.clock.now();
        if (mls.isCommitter(state) || meta.pendingSince === undefined) return;
        if (now - meta.pendingSince < STALE_PROPOSAL_SECONDS) return;
        const p = await mls.proposeRemove(this.host.mls, state, mls.committerOf(state).leafIndex);
        // Counted afresh: the next attempt, if this one is not committed either, is 7 days away.
        meta.pendingSince = now;
        await this.records.save(
          {
            groups: [updatedRecord(record, p.state, meta, now)],
            outbox: [this.topicRow(record.topicId, p.message)],
          },
          p.state,
        );
        this.host.log.warn({ groupId }, "proposals waited 7 days: proposed the committer's removal");
      }),
    );
    await this.host.outbox.flush();
  }

  /**
   * A handler's membership changes as intents in the groups' bookkeeping, to be committed with its
   * message: merged into `current` (the message's own group, about to be written anyway) or
   * returned as further records. `carryOut` acts on them once that commit is durable.
   */
  async recordChanges(changes: GroupChanges, now: number, current?: Loaded): Promise<GroupRecord[]> {
    const records: GroupRecord[] = [];
    for (const [groupId, intents] of changes.entries()) {
      const loaded = current?.record.groupId === groupId ? current : await this.records.load(groupId);
      if (!loaded) {
        this.host.log.warn({ groupId }, 'a handler asked to change a group we are not in; ignored');
        continue;
      }
      for (const intent of intents) loaded.meta.intents = withIntent(loaded.meta.intents, intent);
      if (loaded !== current) records.push(updatedRecord(loaded.record, loaded.state, loaded.meta, now));
    }
    return records;
  }

  /** Carries out the stored intents of these groups (after a commit, or at start-up). */
  carryOut(groupIds: Iterable<string>): void {
    for (const groupId of new Set(groupIds)) {
      this.track(
        this.records.load(groupId).then((loaded) => {
          if (loaded && loaded.meta.intents.length > 0) return this.reassert(groupId, loaded.meta.intents);
          return undefined;
        }),
      );
    }
  }

  // ------------------------------------------------------------------ reading

  async info(groupId: string): Promise<GroupInfo | undefined> {
    const loaded = await this.records.load(groupId);
    return loaded && this.describe(loaded);
  }

  async list(): Promise<GroupInfo[]> {
    const records = await this.host.store.listGroups();
    return records.map((record) =>
      this.describe({
        record,
        state: this.records.decoded(record),
        meta: parseGroupMeta(record.meta, this.host.clock.now()),
      }),
    );
  }

  private describe({ record, state, meta }: Loaded): GroupInfo {
    const committer = mls.committerOf(state);
    return {
      groupId: record.groupId,
      topicId: record.topicId,
      ...(meta.name !== undefined ? { name: meta.name } : {}),
      epoch: record.epoch,
      members: mls.membersOf(state).map((m) => ({ userId: hexId(m.userId), leafIndex: m.leafIndex })),
      committer: hexId(committer.userId),
      isCommitter: mls.isCommitter(state),
    };
  }

  // ------------------------------------------------------------------ outbound

  /** Creates a group with us as committer and invites `members` (PROTOCOL.md §9 "Invitation"). */
  async create(members: readonly string[], opts: { name?: string } = {}): Promise<GroupInfo> {
    const self = this.selfHex();
    const ids = unique(members.map((m) => userIdToHex(userIdFromHex(m)))).filter((m) => m !== self);
    if (ids.length + 1 > this.maxMembers) {
      throw new ArgumentError(`a group holds at most ${this.maxMembers} members (groups.maxMembers)`);
    }
    if (opts.name !== undefined && new TextEncoder().encode(opts.name).length > MAX_GROUP_NAME_BYTES) {
      throw new ArgumentError(`a group name is at most ${MAX_GROUP_NAME_BYTES} UTF-8 bytes`);
    }
    const bundles = await this.fetchInvitees(ids);
    const created = await mls.createGroup(this.host.mls, this.host.identity);
    const groupIdBytes = mls.groupIdOf(created.state);
    const groupId = toHex(groupIdBytes);
    const topicId = topicIdForGroup(groupIdBytes as GroupId);
    // Subscribed before anyone is invited, so nothing a new member posts is missed.
    await this.host.subscribe(this.topicOf(topicId));
    this.topics.set(topicId, groupId);
    const now = this.host.clock.now();
    await this.lane(topicId, async () => {
      let state = created.state;
      let outbox: OutboxRecord[] = [];
      const consumed: mls.Consumed[] = [created.consumed];
      const meta = newGroupMeta(now, opts.name !== undefined ? { name: opts.name } : {});
      if (bundles.length > 0) {
        const plan = this.plan(state, meta, () => undefined, { adds: bundles.map(wantedAdd) });
        const commit = await mls.commitGroup(this.host.mls, state, plan);
        state = commit.state;
        consumed.push(commit.consumed);
        outbox = await this.welcomeRows(
          commit,
          bundles.map((b) => b.record),
          opts.name,
        );
      }
      const record: GroupRecord = {
        groupId,
        topicId,
        state: mls.encodeSession(state),
        epoch: mls.epochOf(state),
        meta: serializeGroupMeta(meta),
        updatedAt: now,
        version: 0,
      };
      await this.records.save({ groups: [record], peers: bundles.map((b) => b.record), outbox }, state);
      for (const c of consumed) mls.wipeConsumed(c);
      if (meta.deferredAdds?.length) this.scheduleCommit(groupId, DEFERRED_ADDS_DELAY_MS);
    });
    await this.host.outbox.flush();
    const info = (await this.info(groupId))!;
    this.host.emitGroup({
      kind: 'created',
      groupId,
      topicId,
      members: info.members.map((m) => m.userId),
    });
    return info;
  }

  /** The committer adds at once; anyone else proposes the Adds for the committer to commit. */
  async add(groupId: string, userIds: readonly string[]): Promise<void> {
    const first = await this.records.require(groupId);
    const current = new Set(mls.membersOf(first.state).map((m) => hexId(m.userId)));
    const ids = unique(userIds.map((u) => userIdToHex(userIdFromHex(u)))).filter((u) => !current.has(u));
    if (ids.length === 0) return;
    if (current.size + ids.length > this.maxMembers) {
      throw new ArgumentError(`a group holds at most ${this.maxMembers} members (groups.maxMembers)`);
    }
    // §9: the committer mines group Welcome PoW only up to 24 bits; a proposer up to §4's limit.
    const maxBits = mls.isCommitter(first.state) ? MAX_WELCOME_POW_BITS : MAX_MINED_POW_BITS;
    const bundles = await this.fetchInvitees(ids, maxBits);
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        const { record, state, meta } = await this.records.require(groupId);
        const now = this.host.clock.now();
        if (mls.isCommitter(state)) {
          const plan = this.plan(state, meta, () => undefined, { adds: bundles.map(wantedAdd) });
          const commit = await mls.commitGroup(this.host.mls, state, plan);
          await this.saveCommit(
            record,
            meta,
            commit,
            bundles.map((b) => b.record),
            now,
          );
          return;
        }
        let next = state;
        const outbox: OutboxRecord[] = [];
        const consumed: mls.Consumed[] = [];
        for (const b of bundles) {
          const p = await mls.proposeAdd(this.host.mls, next, b.keyPackage);
          next = p.state;
          consumed.push(p.consumed);
          outbox.push(this.topicRow(record.topicId, p.message));
        }
        for (const id of ids) meta.intents = withIntent(meta.intents, { kind: 'add', userId: id });
        meta.pendingSince ??= now;
        await this.records.save({ groups: [updatedRecord(record, next, meta, now)], outbox }, next);
        for (const c of consumed) mls.wipeConsumed(c);
      }),
    );
    await this.host.outbox.flush();
  }

  async remove(groupId: string, userIds: readonly string[]): Promise<void> {
    const first = await this.records.require(groupId);
    const ids = unique(userIds.map((u) => userIdToHex(userIdFromHex(u))));
    if (ids.includes(this.selfHex())) throw new ArgumentError('to remove yourself, use leaveGroup()');
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        const { record, state, meta } = await this.records.require(groupId);
        const leaves = mls
          .membersOf(state)
          .filter((m) => ids.includes(hexId(m.userId)))
          .map((m) => m.leafIndex);
        if (leaves.length === 0) return;
        const now = this.host.clock.now();
        if (mls.isCommitter(state)) {
          const plan = this.plan(state, meta, () => undefined, { removes: leaves });
          const commit = await mls.commitGroup(this.host.mls, state, plan);
          await this.saveCommit(record, meta, commit, [], now);
          return;
        }
        let next = state;
        const outbox: OutboxRecord[] = [];
        for (const leaf of leaves) {
          const p = await mls.proposeRemove(this.host.mls, next, leaf);
          next = p.state;
          outbox.push(this.topicRow(record.topicId, p.message));
        }
        for (const id of ids) meta.intents = withIntent(meta.intents, { kind: 'remove', userId: id });
        meta.pendingSince ??= now;
        await this.records.save({ groups: [updatedRecord(record, next, meta, now)], outbox }, next);
      }),
    );
    await this.host.outbox.flush();
  }

  /**
   * Proposes our own Remove; the group state is deleted when the commit removing us arrives. The
   * committer's Remove is committed by the next-lowest member, which becomes the committer (§9).
   */
  async leave(groupId: string): Promise<void> {
    const first = await this.records.require(groupId);
    let alone = false;
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        const { record, state, meta } = await this.records.require(groupId);
        const now = this.host.clock.now();
        if (mls.membersOf(state).length === 1) {
          alone = true;
          await this.records.save({ deleteGroups: [groupId] });
          return;
        }
        const p = await mls.proposeRemove(this.host.mls, state, mls.ownLeafIndex(state));
        meta.intents = withIntent(meta.intents, { kind: 'leave' });
        meta.pendingSince ??= now;
        await this.records.save(
          {
            groups: [updatedRecord(record, p.state, meta, now)],
            outbox: [this.topicRow(record.topicId, p.message)],
          },
          p.state,
        );
      }),
    );
    if (alone) await this.forget(first.record, 'left');
    else await this.host.outbox.flush();
  }

  /** Key refresh on demand: the committer commits with a path, others propose an Update. */
  async updateKeys(groupId: string): Promise<void> {
    const first = await this.records.require(groupId);
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        const loaded = await this.records.require(groupId);
        await this.refreshKeys(loaded, this.host.clock.now());
      }),
    );
    await this.host.outbox.flush();
  }

  async send(
    groupId: string,
    content: { content: string; id: string; replyTo?: string; type?: string },
    data: HandlerData,
  ): Promise<void> {
    const first = await this.records.require(groupId);
    let refreshDue = false;
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        let loaded = await this.records.require(groupId);
        const now = this.host.clock.now();
        if (memberRefreshDue(loaded.state, loaded.meta, now, this.host.updateEveryMessages))
          loaded = await this.refreshKeys(loaded, now);
        const { record, state, meta } = loaded;
        const encrypted = await mls.encryptApplication(
          this.host.mls,
          state,
          encodeContent(content, { padTo: PADDING_BLOCK }),
        );
        meta.messagesSinceCommit += 1;
        meta.ownMessagesSinceUpdate += 1;
        await this.records.save(
          {
            groups: [updatedRecord(record, encrypted.state, meta, now)],
            outbox: [this.topicRow(record.topicId, encrypted.message)],
            conversationData: data,
          },
          encrypted.state,
        );
        mls.wipeConsumed(encrypted.consumed);
        refreshDue =
          mayCommit(encrypted.state) && committerRefreshDue(meta, now, this.host.updateEveryMessages);
      }),
    );
    await this.host.outbox.flush();
    if (refreshDue) this.scheduleCommit(groupId);
  }

  /** §9 "Key refresh": 1,000 messages or 7 days, counted per role. */
  private async refreshKeys(loaded: Loaded, now: number): Promise<Loaded> {
    const { record, state, meta } = loaded;
    if (mls.isCommitter(state)) {
      const commit = await mls.commitGroup(
        this.host.mls,
        state,
        this.plan(state, meta, () => undefined),
      );
      return this.saveCommit(record, meta, commit, [], now);
    }
    if (mls.hasPendingUpdate(state)) return loaded;
    const p = await mls.proposeUpdate(this.host.mls, state);
    meta.ownMessagesSinceUpdate = 0;
    meta.pendingSince ??= now;
    meta.lastUpdateAt = now;
    const next = updatedRecord(record, p.state, meta, now);
    await this.records.save({ groups: [next], outbox: [this.topicRow(record.topicId, p.message)] }, p.state);
    mls.wipeConsumed(p.consumed);
    return { record: next, state: p.state, meta };
  }

  // ------------------------------------------------------------------ the committer

  /** Batches proposals for `commitDelayMs` (well within §9's 2 s), then commits them all. */
  private scheduleCommit(groupId: string, delayMs = this.commitDelayMs): void {
    if (!this.running || this.commitTimers.has(groupId)) return;
    const timer = setTimeout(() => {
      this.commitTimers.delete(groupId);
      this.track(this.commitPendingNow(groupId));
    }, delayMs);
    timer.unref();
    this.commitTimers.set(groupId, timer);
  }

  private track(work: Promise<unknown>): void {
    const p = work.catch((e) => this.host.fail(e)).finally(() => this.background.delete(p));
    this.background.add(p);
  }

  private async commitPendingNow(groupId: string): Promise<void> {
    const first = await this.records.load(groupId);
    if (!first || !mayCommit(first.state)) return;
    // Invitees' bundles give the sealed-sender key and pow_bits for their Welcomes; fetched before
    // entering the lane so that network waits never hold the group's state.
    const invitees = unique([
      ...mls
        .pendingProposals(first.state)
        .flatMap((p) => (p.kind === 'add' && p.add ? [hexId(p.add.userId)] : [])),
      ...(first.meta.deferredAdds ?? []),
    ]);
    const bundles = new Map<string, FetchedPeerBundle>();
    await Promise.all(
      invitees.map(async (id) => {
        try {
          const b = await this.host.bundles.fetch(id);
          if (b.powBits <= MAX_WELCOME_POW_BITS) bundles.set(id, b);
          else this.host.log.debug({ invitee: id, powBits: b.powBits }, 'Add left out: PoW over 24 bits');
        } catch (e) {
          this.host.log.debug({ err: (e as Error).message, invitee: id }, 'invitee bundle unavailable');
        }
      }),
    );
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        const loaded = await this.records.load(groupId);
        if (!loaded || !mayCommit(loaded.state)) return;
        const { record, state, meta } = loaded;
        const pending = mls.pendingProposals(state);
        const now = this.host.clock.now();
        const deferred = meta.deferredAdds ?? [];
        if (
          pending.length === 0 &&
          deferred.length === 0 &&
          !(mls.isCommitter(state) && committerRefreshDue(meta, now, this.host.updateEveryMessages))
        )
          return;
        // Deferred invitees are all looked at here: those without a usable bundle are left out.
        meta.deferredAdds = [];
        const plan = this.plan(state, meta, (id) => bundles.get(hexId(id))?.keyPackage, { deferred });
        let commit: mls.GroupCommit;
        try {
          commit = await mls.commitGroup(this.host.mls, state, plan);
        } catch (e) {
          meta.deferredAdds = [];
          // §9: a set the committer cannot commit is discarded; proposers propose again.
          this.host.log.debug({ err: (e as Error).message, groupId }, 'proposal set discarded');
          if (!mls.isCommitter(state)) return;
          // A leave request of ours survives: it is re-proposed from meta.intents.
          commit = await mls.commitGroup(this.host.mls, state, { exclude: pending.map((p) => p.ref) });
        }
        await this.saveCommit(
          record,
          meta,
          commit,
          [...bundles.values()].map((b) => b.record),
          now,
        );
      }),
    );
    await this.host.outbox.flush();
  }

  /**
   * Stores a commit we made and queues it for the topic; the Welcomes follow only after the broker
   * acknowledged the commit (the row is marked awaitAck), so no one joins an epoch others never see.
   */
  private async saveCommit(
    record: GroupRecord,
    meta: GroupMeta,
    commit: mls.GroupCommit,
    peers: PeerRecord[],
    now: number,
    extra: Pick<InboundCommit, 'envelope'> = {},
  ): Promise<Loaded> {
    const welcomes = await this.welcomeRows(commit, peers, meta.name);
    noteCommit(meta, commit.state, commit.added.length, now, this.selfHex());
    // Our commit carried a path: our own leaf is fresh too.
    meta.lastUpdateAt = now;
    const next = updatedRecord(record, commit.state, meta, now);
    const commitRow = this.topicRow(record.topicId, commit.commit, true);
    await this.records.save(
      {
        ...extra,
        groups: [next],
        peers: peers.filter((p) => commit.added.some((m) => hexId(m.userId) === p.userId)),
        // A Welcome depends on its commit: quarantined with it, never released without it.
        outbox: [commitRow, ...welcomes.map((w) => ({ ...w, dependsOn: commitRow.id }))],
      },
      commit.state,
    );
    mls.wipeConsumed(commit.consumed);
    this.emitMembers(record.groupId, commit.added, commit.removed, commit.state);
    if (meta.deferredAdds?.length) this.scheduleCommit(record.groupId, DEFERRED_ADDS_DELAY_MS);
    return { record: next, state: commit.state, meta };
  }

  private async welcomeRows(
    commit: mls.GroupCommit,
    peers: readonly PeerRecord[],
    name: string | undefined,
  ): Promise<OutboxRecord[]> {
    if (commit.added.length === 0) return [];
    if (commit.welcome === undefined) throw new ProtocolError('a commit adding members produced no Welcome');
    const rows: OutboxRecord[] = [];
    for (const member of commit.added) {
      const peer = peers.find((p) => p.userId === hexId(member.userId));
      if (!peer) {
        this.host.log.warn({ member: hexId(member.userId) }, 'no bundle to seal a group Welcome to');
        continue;
      }
      const payload = await sealWithPow(this.host.sealing, peer, {
        msgType: MSG_TYPE.groupWelcome,
        mls: commit.welcome,
        ratchetTree: commit.ratchetTree,
        sealedSenderKey: this.host.identity.sealPublic,
        sealedSenderKeySignature: signSealedSenderKey(this.host.identity),
        ...(name !== undefined ? { groupName: name } : {}),
      });
      rows.push(inboxRow(this.host.sealing, peer.userId, payload));
    }
    return rows;
  }

  // ------------------------------------------------------------------ inbound: the group topic

  /** Joins the group's lane at arrival, so a group's messages are processed in broker order. */
  receiveTopic(topicId: string, payload: Uint8Array): Promise<DropReason | undefined> {
    // No lane for a topic we are not in: nothing to order there.
    if (!this.topics.has(topicId)) return Promise.resolve('unknown_group');
    return this.lane(topicId, () =>
      this.dropOnInputError('mls', () => retryStale(() => this.processTopicMessage(topicId, payload))),
    );
  }

  /**
   * What a hostile or broken input provokes (codec, verification, protocol errors, also from our
   * own sealing or committing on its behalf) is a drop. Storage and transport failures propagate:
   * the message is then not acknowledged and comes again, so nothing is lost.
   */
  private async dropOnInputError(
    reason: DropReason,
    work: () => Promise<DropReason | undefined>,
  ): Promise<DropReason | undefined> {
    try {
      return await work();
    } catch (e) {
      if (!(e instanceof CodecError || e instanceof VerificationError || e instanceof ProtocolError)) throw e;
      this.host.log.warn({ err: e.message }, 'group input failed; dropped');
      return reason;
    }
  }

  private async processTopicMessage(topicId: string, payload: Uint8Array): Promise<DropReason | undefined> {
    const read = readGroupPayload(payload, this.host.maxEnvelopeBytes);
    if ('drop' in read) return read.drop;
    const groupId = this.topics.get(topicId);
    if (groupId === undefined) return 'unknown_group';
    if (toHex(read.header.groupId) !== groupId) return 'group_payload';
    const digest = digestHex(read.message);
    const found = await this.records.loadForMessage(groupId, digest);
    if (!found) return 'unknown_group';
    const { loaded } = found;
    const step = await groupMessage(
      this.stepCtx,
      { state: loaded.state, processed: found.processed },
      read,
      { maxMembers: this.maxMembers },
      (err) => this.host.log.debug({ err, groupId }, 'group message rejected'),
    );
    if (step.drop) {
      if (step.followUp === 'rejoin') this.fellBehind(groupId);
      return step.drop;
    }
    const { result } = step;
    const processed = { groupId, digest, at: this.host.clock.now() };
    switch (result.kind) {
      case 'removed':
        return this.onRemoved(loaded, processed);
      case 'application':
        return this.onApplication(loaded, result, processed);
      case 'proposal':
        return this.onProposal(loaded, result, processed);
      case 'commit':
        return this.onCommit(loaded, result, processed);
    }
  }

  private async onRemoved(
    { record, state, meta }: Loaded,
    processed: { groupId: string; digest: string; at: UnixSeconds },
  ): Promise<undefined> {
    if (rejoinRequestOpen(meta.rejoinRequest, processed.at)) {
      // The Remove half of the re-add we asked for: the Welcome for our new leaf follows.
      meta.readdPendingSince = processed.at;
      await this.records.save(
        { groups: [updatedRecord(record, state, meta, processed.at)], processed },
        state,
      );
      return undefined;
    }
    await this.records.save({ deleteGroups: [record.groupId], processed });
    const reason = meta.intents.some((i) => i.kind === 'leave') ? 'left' : 'removed';
    await this.forget(record, reason);
    return undefined;
  }

  /** §9: a removed member deletes the group state and unsubscribes. */
  private async forget(record: GroupRecord, reason: 'removed' | 'left'): Promise<void> {
    this.topics.delete(record.topicId);
    this.records.forget(record.groupId);
    const timer = this.commitTimers.get(record.groupId);
    if (timer) clearTimeout(timer);
    this.commitTimers.delete(record.groupId);
    await this.host.unsubscribe(this.topicOf(record.topicId)).catch(() => undefined);
    this.host.emitGroup({ kind: 'left', groupId: record.groupId, topicId: record.topicId, reason });
  }

  private async onApplication(
    { record, meta }: Loaded,
    result: mls.ProcessedGroupMessage,
    processed: { groupId: string; digest: string; at: UnixSeconds },
  ): Promise<DropReason | undefined> {
    const now = processed.at;
    meta.messagesSinceCommit += 1;
    const content = tryDecodeContent(result.plaintext);
    const received: GroupReceivedMessage | undefined = content && {
      from: hexId(result.sender.userId),
      conversation: {
        kind: 'group',
        id: record.groupId,
        groupId: record.groupId,
        topicId: record.topicId,
        ...(meta.name !== undefined ? { name: meta.name } : {}),
      },
      content,
      receivedAt: now,
    };
    let state = result.state;
    const outbox: OutboxRecord[] = [];
    const consumed: mls.Consumed[] = [result.consumed];
    const handler = this.host.handler();
    const run =
      received &&
      handler &&
      (await runHandler(
        handler,
        received,
        (id) => this.host.store.getConversationData(id),
        (e) => this.host.fail(e),
      ));
    if (run) {
      const encrypted = await encryptReplies(this.host.mls, state, run.replies, received!.content, {
        padTo: PADDING_BLOCK,
        row: (_framedIn, message) => Promise.resolve(this.topicRow(record.topicId, message)),
        check: (o) => this.host.outboxRowError(o),
      });
      for (const e of encrypted.refused) this.host.fail(e);
      state = encrypted.state;
      consumed.push(...encrypted.consumed);
      outbox.push(...encrypted.rows);
      meta.messagesSinceCommit += encrypted.rows.length;
      meta.ownMessagesSinceUpdate += encrypted.rows.length;
    }
    const changes = run ? run.changes : new GroupChanges();
    const changed = await this.recordChanges(changes, now, { record, state, meta });
    await this.records.save(
      {
        groups: [updatedRecord(record, state, meta, now), ...changed],
        processed,
        outbox,
        conversationData: run ? run.conversationData : [],
      },
      state,
    );
    for (const c of consumed) mls.wipeConsumed(c);
    if (outbox.length) void this.host.outbox.flush().catch(() => undefined);
    if (changes.size > 0) this.carryOut([...changes.entries()].map(([groupId]) => groupId));
    if (mls.isCommitter(state) && committerRefreshDue(meta, now, this.host.updateEveryMessages))
      this.scheduleCommit(record.groupId);
    // MLS accepted it: the ratchet moved on even if the application cannot read it (§10).
    if (!received) return 'content';
    this.host.emitMessage(received);
    return undefined;
  }

  private async onProposal(
    { record, meta }: Loaded,
    result: mls.ProcessedGroupMessage,
    processed: { groupId: string; digest: string; at: UnixSeconds },
  ): Promise<undefined> {
    meta.pendingSince ??= processed.at;
    await this.records.save(
      { groups: [updatedRecord(record, result.state, meta, processed.at)], processed },
      result.state,
    );
    mls.wipeConsumed(result.consumed);
    if (mayCommit(result.state)) this.scheduleCommit(record.groupId);
    return undefined;
  }

  private async onCommit(
    { record, meta }: Loaded,
    result: mls.ProcessedGroupMessage,
    processed: { groupId: string; digest: string; at: UnixSeconds },
  ): Promise<undefined> {
    const now = processed.at;
    noteCommit(meta, result.state, result.added.length, now, this.selfHex());
    if (!mls.hasPendingUpdate(result.state)) meta.lastUpdateAt = Math.max(meta.lastUpdateAt, now);
    // What the commit did not fulfil is proposed again, a bounded number of times.
    meta.intents = meta.intents
      .filter((i) => (i.attempts ?? 0) < MAX_INTENT_ATTEMPTS)
      .map((i) => ({ ...i, attempts: (i.attempts ?? 0) + 1 }));
    await this.records.save(
      { groups: [updatedRecord(record, result.state, meta, now)], processed },
      result.state,
    );
    mls.wipeConsumed(result.consumed);
    this.emitMembers(record.groupId, result.added, result.removed, result.state);
    if (meta.intents.length > 0) this.track(this.reassert(record.groupId, meta.intents));
    // A newcomer below us became committer and left a stale node on our path; one Update from
    // us clears it before later Adds would make Welcomes that ts-mls joiners refuse.
    if (mls.needsPathRefresh(result.state)) this.track(this.updateKeys(record.groupId));
    return undefined;
  }

  /** Proposals the last commit did not carry are made again in the new epoch (§9). */
  private async reassert(groupId: string, intents: readonly GroupIntent[]): Promise<void> {
    const adds = intents.flatMap((i) => (i.kind === 'add' ? [i.userId] : []));
    const removes = intents.flatMap((i) => (i.kind === 'remove' ? [i.userId] : []));
    if (adds.length) await this.add(groupId, adds).catch((e) => this.host.log.debug({ err: String(e) }));
    if (removes.length)
      await this.remove(groupId, removes).catch((e) => this.host.log.debug({ err: String(e) }));
    if (intents.some((i) => i.kind === 'leave') && (await this.records.load(groupId)))
      await this.leave(groupId);
  }

  private emitMembers(
    groupId: string,
    added: readonly mls.Member[],
    removed: readonly mls.Member[],
    state: mls.GroupSession,
  ): void {
    if (added.length === 0 && removed.length === 0) return;
    this.host.emitGroup({
      kind: 'members',
      groupId,
      added: added.map((m) => hexId(m.userId)),
      removed: removed.map((m) => hexId(m.userId)),
      epoch: mls.epochOf(state),
    });
  }

  // ------------------------------------------------------------------ falling behind (§9)

  /** A message from an epoch above ours: ask the committer to remove and re-add us. */
  private fellBehind(groupId: string): void {
    if (this.rejoining.has(groupId)) return;
    this.rejoining.add(groupId);
    this.track(this.requestRejoin(groupId).finally(() => this.rejoining.delete(groupId)));
  }

  private async requestRejoin(groupId: string): Promise<void> {
    const first = await this.records.load(groupId);
    if (!first) return;
    const now = this.host.clock.now();
    const waiting = first.meta.readdPendingSince;
    if (waiting !== undefined && now - waiting >= REJOIN_REQUEST_SECONDS) {
      // Removed, and the Welcome that should have re-added us never came.
      await this.lane(first.record.topicId, () => this.records.save({ deleteGroups: [groupId] }));
      await this.forget(first.record, 'removed');
      return;
    }
    if (waiting !== undefined) return;
    const asked = first.meta.rejoinRequestedAt;
    if (asked !== undefined && now - asked < REJOIN_INTERVAL_SECONDS) return;
    const committer = mls.committerOf(first.state);
    if (committer.leafIndex === mls.ownLeafIndex(first.state)) return;
    const bundle = await this.host.bundles.fetch(hexId(committer.userId));
    const kp = await mls.generateKeyPackage(this.host.mls, this.host.identity, now);
    await this.host.store.putKeyPackage({
      ref: toHex(kp.ref),
      keyPackage: kp.keyPackage,
      privateKeyPackage: kp.privateKeyPackage,
      createdAt: now,
      notAfter: kp.notAfter as UnixSeconds,
      // Not the bundle's KeyPackage: retained only as long as a superseded one.
      supersededAt: now,
    });
    const groupIdBytes = fromHex(groupId);
    const epoch = mls.epochOf(first.state);
    const claim = { groupId: groupIdBytes, epoch, keyPackage: kp.keyPackage, sentAt: now };
    const payload = await sealWithPow(
      this.host.sealing,
      bundle.record,
      {
        msgType: MSG_TYPE.groupRejoin,
        mls: kp.keyPackage,
        groupId: groupIdBytes,
        rejoinEpoch: epoch,
        rejoinSignature: signRejoin(this.host.identity, claim),
      },
      now,
    );
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        const loaded = await this.records.load(groupId);
        if (!loaded) return;
        loaded.meta.rejoinRequestedAt = now;
        loaded.meta.rejoinRequest = newRejoinRequest(now, committer.identityKey, kp.ref);
        await this.records.save(
          {
            groups: [updatedRecord(loaded.record, loaded.state, loaded.meta, now)],
            outbox: [inboxRow(this.host.sealing, bundle.record.userId, payload)],
          },
          loaded.state,
        );
      }),
    );
    this.host.log.info({ groupId }, 'fell behind; asked the committer to re-add us');
    await this.host.outbox.flush();
  }

  // ------------------------------------------------------------------ inbound: the inbox

  /** msg_type 6. Runs in the sender's lane; writes the group with a CAS like every other step. */
  receiveWelcome(
    opened: OpenedEnvelope,
    sender: UserIdHex,
    now: UnixSeconds,
  ): Promise<DropReason | undefined> {
    return this.dropOnInputError('welcome_invalid', () => this.joinFromWelcome(opened, sender, now));
  }

  private async joinFromWelcome(
    opened: OpenedEnvelope,
    sender: UserIdHex,
    now: UnixSeconds,
  ): Promise<DropReason | undefined> {
    const { inner } = opened;
    const admitted = await admitWelcome(
      { store: this.host.store, mls: this.host.mls, quota: this.host.quota, log: this.host.log },
      opened,
      sender,
      now,
      {
        ...(this.allowInvitesFrom && !this.allowInvitesFrom.has(sender)
          ? { refuseSender: 'group_invite_refused' as const }
          : {}),
        limits: { members: { min: 2, max: this.maxMembers }, maxTreeNodes: this.maxTreeNodes },
        tooLarge: 'group_too_large',
        rejected: 'group welcome rejected',
      },
    );
    if (!admitted.ok) return admitted.reason;
    const { joined, digest: welcomeDigest, sealKey } = admitted;
    // §6: the GroupInfo signer (the committer, checked by the engine) is the envelope's sender.
    if (toHex(joined.groupInfoSignerKey) !== toHex(inner.senderIdentityKey)) return 'sender_binding';
    const groupIdBytes = mls.groupIdOf(joined.state);
    const groupId = toHex(groupIdBytes);
    const topicId = topicIdForGroup(groupIdBytes as GroupId);
    const existing = await this.host.store.getGroup(groupId);
    const existingMeta = existing && parseGroupMeta(existing.meta, now);
    // §9: for a group we are in, only the answer to our own rejoin request (which it clears).
    const verdict = judgeGroupWelcome(
      existingMeta,
      { signerKey: joined.groupInfoSignerKey, consumedRef: joined.consumedRef },
      now,
    );
    if (verdict === 'duplicate') return 'group_duplicate';
    const rejoin = verdict === 'rejoin';
    // §9: subscribe to the topic first, then publish a fresh bundle.
    await this.host.subscribe(this.topicOf(topicId));
    const meta = newGroupMeta(now, {
      invitedBy: sender,
      epochAddedMembers: true,
      ...(inner.groupName !== undefined
        ? { name: inner.groupName }
        : existingMeta?.name !== undefined
          ? { name: existingMeta.name }
          : {}),
      // Kept across the re-add: a forged future-epoch header must not buy another one at once.
      ...(rejoin ? { rejoinRequestedAt: existingMeta!.rejoinRequestedAt } : {}),
    });
    const known = await this.host.store.getPeer(sender);
    const peer: PeerRecord = {
      ...(known ?? { powBits: DEFAULT_POW_BITS }),
      userId: sender,
      identityKey: inner.senderIdentityKey,
      sealKey,
    };
    const record: GroupRecord = {
      groupId,
      topicId,
      state: mls.encodeSession(joined.state),
      epoch: mls.epochOf(joined.state),
      meta: serializeGroupMeta(meta),
      updatedAt: now,
      version: existing?.version ?? 0,
    };
    await this.records.save(
      {
        groups: [record],
        peers: [peer],
        envelope: replayEntry(opened),
        welcome: { digest: welcomeDigest, at: now },
        consumedKeyPackage: { ref: toHex(joined.consumedRef), at: now },
      },
      joined.state,
    );
    this.topics.set(topicId, groupId);
    setImmediate(() => this.host.bundles.scheduleRepublish(false));
    if (rejoin) {
      this.host.emitGroup({ kind: 'rejoined', groupId, topicId, epoch: record.epoch });
    } else {
      this.host.emitGroup({
        kind: 'joined',
        groupId,
        topicId,
        invitedBy: sender,
        members: joined.members.map((m) => hexId(m.userId)),
      });
    }
    return undefined;
  }

  /** msg_type 7, at the committer: remove the member's old leaf and add its fresh KeyPackage. */
  receiveRejoin(
    opened: OpenedEnvelope,
    sender: UserIdHex,
    now: UnixSeconds,
  ): Promise<DropReason | undefined> {
    return this.dropOnInputError('rejoin_invalid', () => this.serveRejoin(opened, sender, now));
  }

  private async serveRejoin(
    opened: OpenedEnvelope,
    sender: UserIdHex,
    now: UnixSeconds,
  ): Promise<DropReason | undefined> {
    const { inner } = opened;
    if (opened.tokenSession !== undefined) return 'access_session';
    if (!inner.groupId || !inner.rejoinSignature || inner.rejoinEpoch === undefined) return 'inner_payload';
    const groupId = toHex(inner.groupId);
    const first = await this.records.load(groupId);
    if (!first || !mls.isCommitter(first.state)) return 'rejoin_invalid';
    const member = mls.memberByIdentityKey(first.state, inner.senderIdentityKey);
    if (!member || member.leafIndex === mls.ownLeafIndex(first.state)) return 'rejoin_invalid';
    // Before the signature checks: a member asking again and again costs no verification.
    const served = first.meta.rejoinsServed[sender];
    if (served !== undefined && now - served < REJOIN_INTERVAL_SECONDS) return 'rejoin_quota';
    let kp: mls.VerifiedKeyPackage;
    try {
      kp = await mls.verifyKeyPackage(this.host.mls, inner.mls, now);
    } catch {
      return 'rejoin_invalid';
    }
    if (toHex(kp.identityKey) !== toHex(inner.senderIdentityKey)) return 'rejoin_invalid';
    const claim = {
      groupId: inner.groupId,
      epoch: inner.rejoinEpoch,
      keyPackage: inner.mls,
      sentAt: opened.envelope.sentAt,
    };
    if (!verifyRejoin(inner.senderIdentityKey, claim, inner.rejoinSignature)) return 'rejoin_invalid';
    // §9 v2: a forged clear epoch makes a member ask; only one that is really behind is re-added.
    if (!memberIsBehind(claim.epoch, mls.epochOf(first.state))) return 'rejoin_not_behind';
    let bundle: FetchedPeerBundle;
    try {
      bundle = await this.host.bundles.fetch(sender);
    } catch {
      return 'bundle_invalid';
    }
    // §9: the Welcome that re-adds it is mined only up to 24 bits.
    if (bundle.powBits > MAX_WELCOME_POW_BITS) return 'rejoin_invalid';
    let outcome: DropReason | undefined;
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        const loaded = await this.records.load(groupId);
        const current = loaded && mls.memberByIdentityKey(loaded.state, inner.senderIdentityKey);
        if (!loaded || !current || !mls.isCommitter(loaded.state)) {
          outcome = 'rejoin_invalid';
          return;
        }
        const plan = this.plan(loaded.state, loaded.meta, () => undefined, {
          adds: [{ userId: sender, keyPackage: inner.mls }],
          removes: [current.leafIndex],
        });
        const commit = await mls.commitGroup(this.host.mls, loaded.state, plan);
        for (const [id, at] of Object.entries(loaded.meta.rejoinsServed)) {
          if (now - at >= REJOIN_INTERVAL_SECONDS) delete loaded.meta.rejoinsServed[id];
        }
        loaded.meta.rejoinsServed[sender] = now;
        await this.saveCommit(loaded.record, loaded.meta, commit, [bundle.record], now, {
          envelope: replayEntry(opened),
        });
      }),
    );
    if (outcome) return outcome;
    this.host.log.info({ groupId, member: sender }, 're-added a member that fell behind');
    void this.host.outbox.flush().catch(() => undefined);
    return undefined;
  }

  // ------------------------------------------------------------------ storage

  /**
   * commitPlan with our member cap, recording in `meta` the invitees left for the next epoch
   * (saveCommit schedules that commit).
   */
  private plan(
    state: mls.GroupSession,
    meta: GroupMeta,
    keyPackageOf: (userId: Uint8Array) => Uint8Array | undefined,
    extras: Omit<CommitExtras, 'maxMembers'> = {},
  ): CommitPlan {
    const plan = commitPlan(state, meta, keyPackageOf, { ...extras, maxMembers: this.maxMembers });
    meta.deferredAdds = deferredAfter(plan, meta.deferredAdds);
    return plan;
  }

  private lane<T>(topicId: string, work: () => Promise<T>): Promise<T> {
    return this.host.queue.run(`g:${topicId}`, work);
  }

  private topicOf(topicId: string): string {
    return groupTopic(this.host.prefix, topicId as TopicId);
  }

  private selfHex(): UserIdHex {
    return userIdToHex(this.host.identity.userId);
  }

  private topicRow(topicId: string, message: Uint8Array, awaitAck = false): OutboxRecord {
    return {
      id: randomUUID(),
      topic: this.topicOf(topicId),
      payload: encodeGroupPayload(message),
      messageExpirySeconds: GROUP_MESSAGE_EXPIRY_SECONDS,
      createdAt: this.host.clock.now(),
      ...(awaitAck ? { awaitAck: true } : {}),
    };
  }

  private async fetchInvitees(
    ids: readonly UserIdHex[],
    maxBits = MAX_WELCOME_POW_BITS,
  ): Promise<FetchedPeerBundle[]> {
    return Promise.all(
      ids.map(async (id) => {
        let b: FetchedPeerBundle;
        try {
          b = await this.host.bundles.fetch(id);
        } catch (e) {
          throw new ArgumentError(`cannot invite ${id}: ${(e as Error).message}`, { cause: e });
        }
        if (b.powBits > maxBits) {
          throw new ArgumentError(
            `cannot invite ${id}: it demands ${b.powBits} PoW bits (we mine at most ${maxBits} for a group Welcome)`,
          );
        }
        return b;
      }),
    );
  }
}
