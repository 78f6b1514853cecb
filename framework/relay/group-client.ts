/**
 * N-way groups (PROTOCOL.md §9) for RelayClient: creating groups, membership changes through the
 * committer, group Welcomes and GROUP_REJOIN on the inbox, and PrivateMessages on the group topic.
 *
 * Every group has one lane (keyed by its topic) in the client's serial queue, so its MLS state moves
 * one message at a time; each step commits the new state, its dedupe record and what it publishes
 * in one store transaction, and the outbox publishes only after that.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { GroupId, TopicId, UnixSeconds, UserIdHex } from './brand.js';
import { fromHex, toHex } from './bytes.js';
import type { Clock } from './clock.js';
import { decodeContent, encodeContent, type AppContent } from './content.js';
import type { DropReason } from './drops.js';
import { decodeGroupPayload, encodeGroupPayload, type InnerPayload } from './envelope.js';
import {
  ArgumentError,
  CodecError,
  HandlerError,
  ProtocolError,
  StaleStateError,
  VerificationError,
} from './errors.js';
import {
  newGroupMeta,
  parseGroupMeta,
  serializeGroupMeta,
  type GroupIntent,
  type GroupMeta,
} from './group-meta.js';
import { signSealedSenderKey, userIdFromHex, userIdToHex, type Identity } from './identity.js';
import { digestHex, type OpenedEnvelope } from './inbound-envelope.js';
import type { KeyedSerialQueue } from './keyed-queue.js';
import {
  DEFAULT_POW_BITS,
  MAX_MINED_POW_BITS,
  MSG_TYPE,
  PADDING_BLOCK,
  SENT_AT_WINDOW_SECONDS,
} from './labels.js';
import * as mls from './mls/index.js';
import { signRejoin, verifyRejoin } from './rejoin.js';
import { VersionedLru } from './state-cache.js';
import type { GroupRecord, InboundCommit, OutboxRecord, PeerRecord, RelayStore } from './store.js';
import { groupTopic, topicIdForGroup } from './topics.js';
import type { WelcomeQuota } from './welcome-quota.js';

const DAY = 86_400;
/** A group message left unread this long by an offline member is of no use to it any more. */
const GROUP_MESSAGE_EXPIRY_SECONDS = 7 * DAY;
const REJOIN_INTERVAL_SECONDS = 600;
/** How long a member removed by its own rejoin waits for the Welcome that re-adds it. */
const READD_WAIT_SECONDS = 3600;
/** How often an unfulfilled membership change is proposed again before we give up on it. */
const MAX_INTENT_ATTEMPTS = 3;

export interface GroupOptions {
  /** User ids allowed to invite us; undefined lets anyone (within the Welcome quotas). */
  allowInvitesFrom?: readonly string[];
  /** Largest group accepted from a Welcome, and created or grown by us. Default 250. */
  maxMembers?: number;
  /** Largest ratchet tree (in nodes, blanks included) accepted from a Welcome. Default 2047. */
  maxTreeNodes?: number;
  /** How long the committer batches proposals before committing; at most 2000 (§9). Default 200. */
  commitDelayMs?: number;
}

export interface GroupMemberInfo {
  userId: UserIdHex;
  leafIndex: number;
}

export interface GroupInfo {
  groupId: string;
  topicId: string;
  name?: string;
  epoch: bigint;
  members: GroupMemberInfo[];
  committer: UserIdHex;
  isCommitter: boolean;
}

export type GroupEvent =
  | { kind: 'created'; groupId: string; topicId: string; members: UserIdHex[] }
  | { kind: 'joined'; groupId: string; topicId: string; invitedBy: UserIdHex; members: UserIdHex[] }
  | { kind: 'members'; groupId: string; added: UserIdHex[]; removed: UserIdHex[]; epoch: bigint }
  | { kind: 'rejoined'; groupId: string; topicId: string; epoch: bigint }
  | { kind: 'left'; groupId: string; topicId: string; reason: 'removed' | 'left' };

export interface GroupConversation {
  kind: 'group';
  /** The group id (hex). */
  id: string;
  groupId: string;
  topicId: string;
  name?: string;
}

export interface GroupReceivedMessage {
  from: UserIdHex;
  conversation: GroupConversation;
  content: AppContent;
  receivedAt: UnixSeconds;
}

export interface FetchedPeerBundle {
  record: PeerRecord;
  keyPackage: Uint8Array;
  powBits: number;
}

type Reply = { content: string; type?: string; replyTo?: string };
type HandlerData = Array<{ conversationId: string; json: string }>;

/** What the group layer needs from RelayClient; one object, so the dependency is explicit. */
export interface GroupHost {
  readonly identity: Identity;
  readonly store: RelayStore;
  readonly mls: mls.MlsContext;
  readonly clock: Clock;
  readonly log: Logger;
  readonly prefix: string;
  readonly queue: KeyedSerialQueue;
  readonly quota: WelcomeQuota;
  readonly updateEveryMessages: number;
  readonly maxEnvelopeBytes: number;
  subscribe(topic: string): Promise<void>;
  unsubscribe(topic: string): Promise<void>;
  fetchPeerBundle(peer: UserIdHex): Promise<FetchedPeerBundle>;
  sealWithPow(
    peer: PeerRecord,
    inner: Omit<InnerPayload, 'senderId' | 'senderIdentityKey'>,
    sentAt?: UnixSeconds,
  ): Promise<Uint8Array>;
  inboxRow(peer: string, payload: Uint8Array): OutboxRecord;
  flushOutbox(): Promise<void>;
  dropped(reason: DropReason, topic: string, error?: unknown): void;
  fail(e: unknown): void;
  republishBundle(): void;
  emitGroup(e: GroupEvent): void;
  emitMessage(m: GroupReceivedMessage): void;
  /** The transactional handler, called with the same contract as for 1:1 messages. */
  handle(
    message: GroupReceivedMessage,
    reply: (r: string | Reply) => void,
    tx: { loadData(id: string): Promise<string | undefined>; saveData(id: string, json: string): void },
  ): Promise<boolean>;
}

interface Loaded {
  record: GroupRecord;
  state: mls.GroupSession;
  meta: GroupMeta;
}

const hexId = (id: Uint8Array): UserIdHex => userIdToHex(id as never);

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

async function retryStale<T>(work: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await work();
    } catch (e) {
      if (!(e instanceof StaleStateError) || i >= attempts) throw e;
    }
  }
}

export class GroupCoordinator {
  private readonly states = new VersionedLru<mls.GroupSession>();
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
  ) {
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
    for (const g of await this.host.store.listGroups()) this.topics.set(g.topicId, g.groupId);
  }

  /** Re-subscribes every stored group (PROTOCOL.md §9 "Delivery") and resumes pending commits. */
  async start(): Promise<void> {
    const groups = await this.host.store.listGroups();
    const topics = groups.map((g) => this.topicOf(g.topicId));
    for (let i = 0; i < topics.length; i += 100) {
      await Promise.all(topics.slice(i, i + 100).map((t) => this.host.subscribe(t)));
    }
    for (const g of groups) {
      const state = mls.decodeSession(g.state);
      if (this.mayCommit(state) && mls.hasPendingProposals(state)) this.scheduleCommit(g.groupId);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const t of this.commitTimers.values()) clearTimeout(t);
    this.commitTimers.clear();
    await Promise.allSettled([...this.background]);
  }

  isGroupTopic(topicId: string): boolean {
    return this.topics.has(topicId);
  }

  // ------------------------------------------------------------------ reading

  async info(groupId: string): Promise<GroupInfo | undefined> {
    const loaded = await this.load(groupId);
    return loaded && this.describe(loaded);
  }

  async list(): Promise<GroupInfo[]> {
    const records = await this.host.store.listGroups();
    return records.map((record) =>
      this.describe({
        record,
        state: this.decoded(record),
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
    if (opts.name !== undefined && opts.name.length > 128) {
      throw new ArgumentError('a group name is at most 128 characters');
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
      if (bundles.length > 0) {
        const commit = await mls.commitGroup(this.host.mls, state, {
          adds: bundles.map((b) => b.keyPackage),
        });
        state = commit.state;
        consumed.push(commit.consumed);
        outbox = await this.welcomeRows(
          commit,
          bundles.map((b) => b.record),
        );
      }
      const record: GroupRecord = {
        groupId,
        topicId,
        state: mls.encodeSession(state),
        epoch: mls.epochOf(state),
        meta: serializeGroupMeta(newGroupMeta(now, opts.name !== undefined ? { name: opts.name } : {})),
        updatedAt: now,
        version: 0,
      };
      await this.save({ groups: [record], peers: bundles.map((b) => b.record), outbox }, state);
      for (const c of consumed) mls.wipeConsumed(c);
    });
    await this.host.flushOutbox();
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
    const first = await this.require(groupId);
    const current = new Set(mls.membersOf(first.state).map((m) => hexId(m.userId)));
    const ids = unique(userIds.map((u) => userIdToHex(userIdFromHex(u)))).filter((u) => !current.has(u));
    if (ids.length === 0) return;
    if (current.size + ids.length > this.maxMembers) {
      throw new ArgumentError(`a group holds at most ${this.maxMembers} members (groups.maxMembers)`);
    }
    const bundles = await this.fetchInvitees(ids);
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        const { record, state, meta } = await this.require(groupId);
        const now = this.host.clock.now();
        if (mls.isCommitter(state)) {
          const plan = this.commitPlan(state, meta, new Map());
          const commit = await mls.commitGroup(this.host.mls, state, {
            ...plan,
            adds: [...plan.adds, ...bundles.map((b) => b.keyPackage)],
          });
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
        for (const id of ids) this.addIntent(meta, { kind: 'add', userId: id });
        await this.save({ groups: [this.updated(record, next, meta, now)], outbox }, next);
        for (const c of consumed) mls.wipeConsumed(c);
      }),
    );
    await this.host.flushOutbox();
  }

  async remove(groupId: string, userIds: readonly string[]): Promise<void> {
    const first = await this.require(groupId);
    const ids = unique(userIds.map((u) => userIdToHex(userIdFromHex(u))));
    if (ids.includes(this.selfHex())) throw new ArgumentError('to remove yourself, use leaveGroup()');
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        const { record, state, meta } = await this.require(groupId);
        const leaves = mls
          .membersOf(state)
          .filter((m) => ids.includes(hexId(m.userId)))
          .map((m) => m.leafIndex);
        if (leaves.length === 0) return;
        const now = this.host.clock.now();
        if (mls.isCommitter(state)) {
          const plan = this.commitPlan(state, meta, new Map());
          const commit = await mls.commitGroup(this.host.mls, state, {
            ...plan,
            removes: [...plan.removes, ...leaves],
          });
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
        for (const id of ids) this.addIntent(meta, { kind: 'remove', userId: id });
        await this.save({ groups: [this.updated(record, next, meta, now)], outbox }, next);
      }),
    );
    await this.host.flushOutbox();
  }

  /**
   * Proposes our own Remove; the group state is deleted when the commit removing us arrives. The
   * committer's Remove is committed by the next-lowest member, which becomes the committer (§9).
   */
  async leave(groupId: string): Promise<void> {
    const first = await this.require(groupId);
    let alone = false;
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        const { record, state, meta } = await this.require(groupId);
        const now = this.host.clock.now();
        if (mls.membersOf(state).length === 1) {
          alone = true;
          await this.save({ deleteGroups: [groupId] });
          return;
        }
        const p = await mls.proposeRemove(this.host.mls, state, mls.ownLeafIndex(state));
        this.addIntent(meta, { kind: 'leave' });
        await this.save(
          {
            groups: [this.updated(record, p.state, meta, now)],
            outbox: [this.topicRow(record.topicId, p.message)],
          },
          p.state,
        );
      }),
    );
    if (alone) await this.forget(first.record, 'left');
    else await this.host.flushOutbox();
  }

  /** Key refresh on demand: the committer commits with a path, others propose an Update. */
  async updateKeys(groupId: string): Promise<void> {
    const first = await this.require(groupId);
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        const loaded = await this.require(groupId);
        await this.refreshKeys(loaded, this.host.clock.now());
      }),
    );
    await this.host.flushOutbox();
  }

  async send(
    groupId: string,
    content: { content: string; id: string; replyTo?: string; type?: string },
    data: HandlerData,
  ): Promise<void> {
    const first = await this.require(groupId);
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        let loaded = await this.require(groupId);
        const now = this.host.clock.now();
        if (this.keyRefreshDue(loaded, now)) loaded = await this.refreshKeys(loaded, now);
        const { record, state, meta } = loaded;
        const encrypted = await mls.encryptApplication(
          this.host.mls,
          state,
          encodeContent(content, { padTo: PADDING_BLOCK }),
        );
        meta.messagesSinceCommit += 1;
        meta.ownMessagesSinceUpdate += 1;
        await this.save(
          {
            groups: [this.updated(record, encrypted.state, meta, now)],
            outbox: [this.topicRow(record.topicId, encrypted.message)],
            conversationData: data,
          },
          encrypted.state,
        );
        mls.wipeConsumed(encrypted.consumed);
      }),
    );
    await this.host.flushOutbox();
    if (this.mayCommit(first.state)) this.scheduleCommitIfDue(groupId);
  }

  /** §9 "Key refresh": 1,000 messages or 7 days, counted per role. */
  private keyRefreshDue({ state, meta }: Loaded, now: number): boolean {
    if (mls.isCommitter(state)) return false; // the committer refreshes from its commit timer
    if (mls.hasPendingUpdate(state)) return false;
    return meta.ownMessagesSinceUpdate >= this.host.updateEveryMessages || now - meta.lastUpdateAt >= 7 * DAY;
  }

  private committerRefreshDue(meta: GroupMeta, now: number): boolean {
    return meta.messagesSinceCommit >= this.host.updateEveryMessages || now - meta.lastCommitAt >= 7 * DAY;
  }

  private async refreshKeys(loaded: Loaded, now: number): Promise<Loaded> {
    const { record, state, meta } = loaded;
    if (mls.isCommitter(state)) {
      const commit = await mls.commitGroup(this.host.mls, state, this.commitPlan(state, meta, new Map()));
      return this.saveCommit(record, meta, commit, [], now);
    }
    if (mls.hasPendingUpdate(state)) return loaded;
    const p = await mls.proposeUpdate(this.host.mls, state);
    meta.ownMessagesSinceUpdate = 0;
    meta.lastUpdateAt = now;
    const next = this.updated(record, p.state, meta, now);
    await this.save({ groups: [next], outbox: [this.topicRow(record.topicId, p.message)] }, p.state);
    mls.wipeConsumed(p.consumed);
    return { record: next, state: p.state, meta };
  }

  // ------------------------------------------------------------------ the committer

  /** PROTOCOL.md §9: the lowest leaf commits; the next-lowest only to commit the committer's Remove. */
  private mayCommit(state: mls.GroupSession): boolean {
    const own = mls.ownLeafIndex(state);
    // A committer that asked to leave waits for the next-lowest member to commit its Remove.
    if (mls.isCommitter(state)) {
      return !mls.pendingProposals(state).some((p) => p.kind === 'remove' && p.removeLeaf === own);
    }
    if (!mls.isNextCommitter(state)) return false;
    const committerLeaf = mls.committerOf(state).leafIndex;
    return mls.pendingProposals(state).some((p) => p.kind === 'remove' && p.removeLeaf === committerLeaf);
  }

  private scheduleCommitIfDue(groupId: string): void {
    void this.load(groupId).then((loaded) => {
      if (loaded && this.committerRefreshDue(loaded.meta, this.host.clock.now()))
        this.scheduleCommit(groupId);
    });
  }

  /** Batches proposals for `commitDelayMs` (well within §9's 2 s), then commits them all. */
  private scheduleCommit(groupId: string): void {
    if (!this.running || this.commitTimers.has(groupId)) return;
    const timer = setTimeout(() => {
      this.commitTimers.delete(groupId);
      this.track(this.commitPendingNow(groupId));
    }, this.commitDelayMs);
    timer.unref();
    this.commitTimers.set(groupId, timer);
  }

  private track(work: Promise<unknown>): void {
    const p = work.catch((e) => this.host.fail(e)).finally(() => this.background.delete(p));
    this.background.add(p);
  }

  private async commitPendingNow(groupId: string): Promise<void> {
    const first = await this.load(groupId);
    if (!first || !this.mayCommit(first.state)) return;
    // Invitees' bundles give the sealed-sender key and pow_bits for their Welcomes; fetched before
    // entering the lane so that network waits never hold the group's state.
    const invitees = unique(
      mls
        .pendingProposals(first.state)
        .flatMap((p) => (p.kind === 'add' && p.add ? [hexId(p.add.userId)] : [])),
    );
    const bundles = new Map<string, FetchedPeerBundle>();
    await Promise.all(
      invitees.map(async (id) => {
        try {
          const b = await this.host.fetchPeerBundle(id);
          if (b.powBits <= MAX_MINED_POW_BITS) bundles.set(id, b);
        } catch (e) {
          this.host.log.debug({ err: (e as Error).message, invitee: id }, 'invitee bundle unavailable');
        }
      }),
    );
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        const loaded = await this.load(groupId);
        if (!loaded || !this.mayCommit(loaded.state)) return;
        const { record, state, meta } = loaded;
        const pending = mls.pendingProposals(state);
        const now = this.host.clock.now();
        if (pending.length === 0 && !(mls.isCommitter(state) && this.committerRefreshDue(meta, now))) return;
        const plan = this.commitPlan(state, meta, bundles);
        let commit: mls.GroupCommit;
        try {
          commit = await mls.commitGroup(this.host.mls, state, plan);
        } catch (e) {
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
    await this.host.flushOutbox();
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
  ): Promise<Loaded> {
    const welcomes = await this.welcomeRows(commit, peers);
    meta.messagesSinceCommit = 0;
    meta.lastCommitAt = now;
    meta.lastUpdateAt = now;
    meta.epochAddedMembers = commit.added.length > 0;
    delete meta.pendingSince;
    const next = this.updated(record, commit.state, meta, now);
    await this.save(
      {
        groups: [next],
        peers: peers.filter((p) => commit.added.some((m) => hexId(m.userId) === p.userId)),
        outbox: [this.topicRow(record.topicId, commit.commit, true), ...welcomes],
      },
      commit.state,
    );
    mls.wipeConsumed(commit.consumed);
    this.emitMembers(record.groupId, commit.added, commit.removed, commit.state);
    return { record: next, state: commit.state, meta };
  }

  private async welcomeRows(commit: mls.GroupCommit, peers: readonly PeerRecord[]): Promise<OutboxRecord[]> {
    if (commit.added.length === 0) return [];
    if (commit.welcome === undefined) throw new ProtocolError('a commit adding members produced no Welcome');
    const rows: OutboxRecord[] = [];
    for (const member of commit.added) {
      const peer = peers.find((p) => p.userId === hexId(member.userId));
      if (!peer) {
        this.host.log.warn({ member: hexId(member.userId) }, 'no bundle to seal a group Welcome to');
        continue;
      }
      const payload = await this.host.sealWithPow(peer, {
        msgType: MSG_TYPE.groupWelcome,
        mls: commit.welcome,
        ratchetTree: commit.ratchetTree,
        sealedSenderKey: this.host.identity.sealPublic,
        sealedSenderKeySignature: signSealedSenderKey(this.host.identity),
      });
      rows.push(this.host.inboxRow(peer.userId, payload));
    }
    return rows;
  }

  /**
   * Which pending proposals a commit carries, and how. A member that joined in this epoch
   * subscribed only after its Welcome and may have missed proposals published before that; a
   * commit naming one by reference would be one it cannot process. So Adds and Removes are
   * carried by value (an Add with the invitee's freshly fetched KeyPackage; §9 leaves out Adds
   * without a valid bundle), and in an epoch that added members, other members' Updates (which
   * cannot go by value) wait for the next epoch. The committer's own Remove stays by reference:
   * the hand-over commit is recognised by it.
   */
  private commitPlan(
    state: mls.GroupSession,
    meta: GroupMeta,
    bundles: ReadonlyMap<string, FetchedPeerBundle>,
  ): { exclude: string[]; adds: Uint8Array[]; removes: number[] } {
    const committerLeaf = mls.committerOf(state).leafIndex;
    const plan = { exclude: [] as string[], adds: [] as Uint8Array[], removes: [] as number[] };
    for (const p of mls.pendingProposals(state)) {
      if (p.kind === 'add') {
        plan.exclude.push(p.ref);
        const bundle = p.add && bundles.get(hexId(p.add.userId));
        if (bundle) plan.adds.push(bundle.keyPackage);
      } else if (p.kind === 'remove' && p.removeLeaf !== committerLeaf) {
        plan.exclude.push(p.ref);
        if (p.removeLeaf !== undefined) plan.removes.push(p.removeLeaf);
      } else if (p.kind === 'update' && meta.epochAddedMembers) {
        plan.exclude.push(p.ref);
      }
    }
    return plan;
  }

  // ------------------------------------------------------------------ inbound: the group topic

  /** Joins the group's lane at arrival, so a group's messages are processed in broker order. */
  receiveTopic(topic: string, topicId: string, payload: Uint8Array): Promise<DropReason | undefined> {
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
    if (payload.length > this.host.maxEnvelopeBytes) return 'oversize';
    let message: Uint8Array;
    let header: ReturnType<typeof mls.peekHeader>;
    try {
      message = decodeGroupPayload(payload);
      header = mls.peekHeader(message);
    } catch {
      return 'group_payload';
    }
    const groupId = this.topics.get(topicId);
    if (groupId === undefined) return 'unknown_group';
    if (toHex(header.groupId) !== groupId) return 'group_payload';
    const loaded = await this.load(groupId);
    if (!loaded) return 'unknown_group';
    const digest = digestHex(message);
    if (await this.host.store.hasProcessed(groupId, digest)) return 'duplicate';
    const epoch = mls.epochOf(loaded.state);
    if (header.epoch > epoch) {
      this.fellBehind(groupId);
      return 'group_epoch_gap';
    }
    if (header.contentType !== 'application' && header.epoch < epoch) {
      // One commit per epoch from the one committer: another commit for an epoch we already left is a fork.
      return header.contentType === 'commit' && header.epoch === epoch - 1n ? 'group_fork' : 'group_stale';
    }
    let result: mls.ProcessedGroupMessage;
    try {
      result = await mls.processGroupMessage(this.host.mls, loaded.state, message, {
        now: this.host.clock.now(),
      });
    } catch (e) {
      this.host.log.debug({ err: (e as Error).message, groupId }, 'group message rejected');
      return 'mls';
    }
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
    const asked = meta.rejoinRequestedAt;
    if (asked !== undefined && processed.at - asked < READD_WAIT_SECONDS) {
      // The Remove half of the re-add we asked for: the Welcome for our new leaf follows.
      meta.readdPendingSince = processed.at;
      await this.save({ groups: [this.updated(record, state, meta, processed.at)], processed }, state);
      return undefined;
    }
    await this.save({ deleteGroups: [record.groupId], processed });
    const reason = meta.intents.some((i) => i.kind === 'leave') ? 'left' : 'removed';
    await this.forget(record, reason);
    return undefined;
  }

  /** §9: a removed member deletes the group state and unsubscribes. */
  private async forget(record: GroupRecord, reason: 'removed' | 'left'): Promise<void> {
    this.topics.delete(record.topicId);
    this.states.delete(record.groupId);
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
    const content = parseContent(result.plaintext);
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
    const data = new Map<string, string>();
    if (received) {
      const replies: Reply[] = [];
      const tx = {
        loadData: async (id: string) => data.get(id) ?? (await this.host.store.getConversationData(id)),
        saveData: (id: string, json: string) => void data.set(id, json),
      };
      try {
        await this.host.handle(received, (r) => replies.push(typeof r === 'string' ? { content: r } : r), tx);
      } catch (e) {
        this.host.fail(new HandlerError('message handler failed', { cause: e }));
      }
      for (const r of replies) {
        const replyTo = r.replyTo ?? received.content.id;
        const encoded = encodeContent(
          { ...r, id: randomUUID(), ...(replyTo !== undefined ? { replyTo } : {}) },
          { padTo: PADDING_BLOCK },
        );
        const encrypted = await mls.encryptApplication(this.host.mls, state, encoded);
        state = encrypted.state;
        consumed.push(encrypted.consumed);
        outbox.push(this.topicRow(record.topicId, encrypted.message));
        meta.messagesSinceCommit += 1;
        meta.ownMessagesSinceUpdate += 1;
      }
    }
    await this.save(
      {
        groups: [this.updated(record, state, meta, now)],
        processed,
        outbox,
        conversationData: [...data].map(([conversationId, json]) => ({ conversationId, json })),
      },
      state,
    );
    for (const c of consumed) mls.wipeConsumed(c);
    if (outbox.length) void this.host.flushOutbox().catch(() => undefined);
    if (mls.isCommitter(state) && this.committerRefreshDue(meta, now)) this.scheduleCommit(record.groupId);
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
    await this.save(
      { groups: [this.updated(record, result.state, meta, processed.at)], processed },
      result.state,
    );
    mls.wipeConsumed(result.consumed);
    if (this.mayCommit(result.state)) this.scheduleCommit(record.groupId);
    return undefined;
  }

  private async onCommit(
    { record, meta }: Loaded,
    result: mls.ProcessedGroupMessage,
    processed: { groupId: string; digest: string; at: UnixSeconds },
  ): Promise<undefined> {
    const now = processed.at;
    meta.messagesSinceCommit = 0;
    meta.lastCommitAt = now;
    meta.epochAddedMembers = result.added.length > 0;
    delete meta.pendingSince;
    if (!mls.hasPendingUpdate(result.state)) meta.lastUpdateAt = Math.max(meta.lastUpdateAt, now);
    const members = new Set(mls.membersOf(result.state).map((m) => hexId(m.userId)));
    const stillWanted = meta.intents.filter((i) => !this.intentDone(i, members));
    const retry = stillWanted.filter((i) => (i.attempts ?? 0) < MAX_INTENT_ATTEMPTS);
    meta.intents = retry.map((i) => ({ ...i, attempts: (i.attempts ?? 0) + 1 }));
    await this.save({ groups: [this.updated(record, result.state, meta, now)], processed }, result.state);
    mls.wipeConsumed(result.consumed);
    this.emitMembers(record.groupId, result.added, result.removed, result.state);
    if (meta.intents.length > 0) this.track(this.reassert(record.groupId, meta.intents));
    // A newcomer below us became committer and left a stale node on our path; one Update from
    // us clears it before later Adds would make Welcomes that ts-mls joiners refuse.
    if (mls.needsPathRefresh(result.state)) this.track(this.updateKeys(record.groupId));
    return undefined;
  }

  private intentDone(intent: GroupIntent, members: Set<string>): boolean {
    if (intent.kind === 'add') return members.has(intent.userId);
    if (intent.kind === 'remove') return !members.has(intent.userId);
    return !members.has(this.selfHex());
  }

  /** Proposals the last commit did not carry are made again in the new epoch (§9). */
  private async reassert(groupId: string, intents: readonly GroupIntent[]): Promise<void> {
    const adds = intents.flatMap((i) => (i.kind === 'add' ? [i.userId] : []));
    const removes = intents.flatMap((i) => (i.kind === 'remove' ? [i.userId] : []));
    if (adds.length) await this.add(groupId, adds).catch((e) => this.host.log.debug({ err: String(e) }));
    if (removes.length)
      await this.remove(groupId, removes).catch((e) => this.host.log.debug({ err: String(e) }));
    if (intents.some((i) => i.kind === 'leave') && (await this.load(groupId))) await this.leave(groupId);
  }

  private addIntent(meta: GroupMeta, intent: GroupIntent): void {
    const same = (i: GroupIntent) =>
      i.kind === intent.kind &&
      (i.kind === 'leave' || (intent.kind !== 'leave' && i.userId === intent.userId));
    const existing = meta.intents.find(same);
    if (!existing) meta.intents.push(intent);
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
    const first = await this.load(groupId);
    if (!first) return;
    const now = this.host.clock.now();
    const waiting = first.meta.readdPendingSince;
    if (waiting !== undefined && now - waiting >= READD_WAIT_SECONDS) {
      // Removed, and the Welcome that should have re-added us never came.
      await this.lane(first.record.topicId, () => this.save({ deleteGroups: [groupId] }));
      await this.forget(first.record, 'removed');
      return;
    }
    if (waiting !== undefined) return;
    const asked = first.meta.rejoinRequestedAt;
    if (asked !== undefined && now - asked < REJOIN_INTERVAL_SECONDS) return;
    const committer = mls.committerOf(first.state);
    if (committer.leafIndex === mls.ownLeafIndex(first.state)) return;
    const bundle = await this.host.fetchPeerBundle(hexId(committer.userId));
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
    const payload = await this.host.sealWithPow(
      bundle.record,
      {
        msgType: MSG_TYPE.groupRejoin,
        mls: kp.keyPackage,
        groupId: groupIdBytes,
        rejoinSignature: signRejoin(this.host.identity, groupIdBytes, kp.keyPackage, now),
      },
      now,
    );
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        const loaded = await this.load(groupId);
        if (!loaded) return;
        loaded.meta.rejoinRequestedAt = now;
        await this.save(
          {
            groups: [this.updated(loaded.record, loaded.state, loaded.meta, now)],
            outbox: [this.host.inboxRow(bundle.record.userId, payload)],
          },
          loaded.state,
        );
      }),
    );
    this.host.log.info({ groupId }, 'fell behind; asked the committer to re-add us');
    await this.host.flushOutbox();
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
    if (opened.tokenSession !== undefined) return 'access_session';
    if (!inner.sealedSenderKey) return 'inner_payload';
    if (this.allowInvitesFrom && !this.allowInvitesFrom.has(sender)) return 'group_invite_refused';
    const welcomeDigest = digestHex(inner.mls);
    if (await this.host.store.hasWelcome(welcomeDigest, (now - 7 * DAY) as UnixSeconds))
      return 'welcome_replay';
    if (!this.host.quota.take(sender)) return 'welcome_quota';
    let joined: mls.JoinedSession;
    try {
      joined = await mls.joinFromWelcome(
        this.host.mls,
        inner.mls,
        inner.ratchetTree,
        async (ref) => {
          const kp = (await this.host.store.listKeyPackages()).find((k) => k.ref === toHex(ref));
          return kp && { ref, keyPackage: kp.keyPackage, privateKeyPackage: kp.privateKeyPackage };
        },
        { members: { min: 2, max: this.maxMembers }, maxTreeNodes: this.maxTreeNodes },
      );
    } catch (e) {
      this.host.log.debug({ err: (e as Error).message }, 'group welcome rejected');
      return e instanceof mls.GroupLimitError ? 'group_too_large' : 'welcome_invalid';
    }
    // §6: the GroupInfo signer (the committer, checked by the engine) is the envelope's sender.
    if (toHex(joined.groupInfoSignerKey) !== toHex(inner.senderIdentityKey)) return 'sender_binding';
    const groupIdBytes = mls.groupIdOf(joined.state);
    const groupId = toHex(groupIdBytes);
    const topicId = topicIdForGroup(groupIdBytes as GroupId);
    const existing = await this.host.store.getGroup(groupId);
    const existingMeta = existing && parseGroupMeta(existing.meta, now);
    const rejoin =
      existingMeta?.rejoinRequestedAt !== undefined &&
      now - existingMeta.rejoinRequestedAt < READD_WAIT_SECONDS;
    if (existing && !rejoin) return 'group_duplicate_welcome';
    // §9: subscribe to the topic first, then publish a fresh bundle.
    await this.host.subscribe(this.topicOf(topicId));
    const meta = newGroupMeta(now, {
      invitedBy: sender,
      epochAddedMembers: true,
      ...(existingMeta?.name !== undefined ? { name: existingMeta.name } : {}),
      // Kept across the re-add: a forged future-epoch header must not buy another one at once.
      ...(rejoin ? { rejoinRequestedAt: existingMeta.rejoinRequestedAt } : {}),
    });
    const known = await this.host.store.getPeer(sender);
    const peer: PeerRecord = {
      ...(known ?? { powBits: DEFAULT_POW_BITS }),
      userId: sender,
      identityKey: inner.senderIdentityKey,
      sealKey: inner.sealedSenderKey,
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
    await this.save(
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
    setImmediate(() => this.host.republishBundle());
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
    if (!inner.groupId || !inner.rejoinSignature) return 'inner_payload';
    const groupId = toHex(inner.groupId);
    const first = await this.load(groupId);
    if (!first || !mls.isCommitter(first.state)) return 'rejoin_invalid';
    const member = mls.memberByIdentityKey(first.state, inner.senderIdentityKey);
    if (!member || member.leafIndex === mls.ownLeafIndex(first.state)) return 'rejoin_invalid';
    let kp: mls.VerifiedKeyPackage;
    try {
      kp = await mls.verifyKeyPackage(this.host.mls, inner.mls, now);
    } catch {
      return 'rejoin_invalid';
    }
    if (toHex(kp.identityKey) !== toHex(inner.senderIdentityKey)) return 'rejoin_invalid';
    if (
      !verifyRejoin(
        inner.senderIdentityKey,
        inner.groupId,
        inner.mls,
        opened.envelope.sentAt,
        inner.rejoinSignature,
      )
    ) {
      return 'rejoin_invalid';
    }
    const served = first.meta.rejoinsServed[sender];
    if (served !== undefined && now - served < REJOIN_INTERVAL_SECONDS) return 'rejoin_quota';
    let bundle: FetchedPeerBundle;
    try {
      bundle = await this.host.fetchPeerBundle(sender);
    } catch {
      return 'bundle_invalid';
    }
    let outcome: DropReason | undefined;
    await this.lane(first.record.topicId, () =>
      retryStale(async () => {
        const loaded = await this.load(groupId);
        const current = loaded && mls.memberByIdentityKey(loaded.state, inner.senderIdentityKey);
        if (!loaded || !current || !mls.isCommitter(loaded.state)) {
          outcome = 'rejoin_invalid';
          return;
        }
        const plan = this.commitPlan(loaded.state, loaded.meta, new Map());
        const commit = await mls.commitGroup(this.host.mls, loaded.state, {
          ...plan,
          removes: [...plan.removes, current.leafIndex],
          adds: [...plan.adds, inner.mls],
        });
        for (const [id, at] of Object.entries(loaded.meta.rejoinsServed)) {
          if (now - at >= REJOIN_INTERVAL_SECONDS) delete loaded.meta.rejoinsServed[id];
        }
        loaded.meta.rejoinsServed[sender] = now;
        const welcomes = await this.welcomeRows(commit, [bundle.record]);
        loaded.meta.messagesSinceCommit = 0;
        loaded.meta.lastCommitAt = now;
        await this.save(
          {
            groups: [this.updated(loaded.record, commit.state, loaded.meta, now)],
            envelope: replayEntry(opened),
            outbox: [this.topicRow(loaded.record.topicId, commit.commit, true), ...welcomes],
          },
          commit.state,
        );
        mls.wipeConsumed(commit.consumed);
      }),
    );
    if (outcome) return outcome;
    this.host.log.info({ groupId, member: sender }, 're-added a member that fell behind');
    void this.host.flushOutbox().catch(() => undefined);
    return undefined;
  }

  // ------------------------------------------------------------------ storage

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

  private async fetchInvitees(ids: readonly UserIdHex[]): Promise<FetchedPeerBundle[]> {
    return Promise.all(
      ids.map(async (id) => {
        let b: FetchedPeerBundle;
        try {
          b = await this.host.fetchPeerBundle(id);
        } catch (e) {
          throw new ArgumentError(`cannot invite ${id}: ${(e as Error).message}`, { cause: e });
        }
        if (b.powBits > MAX_MINED_POW_BITS) {
          throw new ArgumentError(
            `cannot invite ${id}: it demands ${b.powBits} PoW bits (we mine at most ${MAX_MINED_POW_BITS})`,
          );
        }
        return b;
      }),
    );
  }

  private decoded(record: GroupRecord): mls.GroupSession {
    return this.states.get(record.groupId, record.version) ?? mls.decodeSession(record.state);
  }

  private async load(groupId: string): Promise<Loaded | undefined> {
    const record = await this.host.store.getGroup(groupId);
    if (!record) return undefined;
    return { record, state: this.decoded(record), meta: parseGroupMeta(record.meta, this.host.clock.now()) };
  }

  private async require(groupId: string): Promise<Loaded> {
    const loaded = await this.load(groupId);
    if (!loaded)
      throw new ArgumentError(`not a member of group ${groupId}; see groups() for the ones we are in`);
    return loaded;
  }

  private updated(record: GroupRecord, state: mls.GroupSession, meta: GroupMeta, now: number): GroupRecord {
    return {
      ...record,
      state: mls.encodeSession(state),
      epoch: mls.epochOf(state),
      meta: serializeGroupMeta(meta),
      updatedAt: now as UnixSeconds,
    };
  }

  /** Commits, then moves each written record to the version the store now holds. */
  private async save(changes: InboundCommit, decoded?: mls.GroupSession): Promise<void> {
    try {
      await this.host.store.commit(changes);
    } catch (e) {
      for (const g of changes.groups ?? []) this.states.delete(g.groupId);
      throw e;
    }
    for (const g of changes.deleteGroups ?? []) this.states.delete(g);
    for (const g of changes.groups ?? []) {
      g.version += 1;
      if (decoded && changes.groups?.length === 1) this.states.set(g.groupId, g.version, decoded);
      else this.states.delete(g.groupId);
    }
  }
}

function parseContent(plaintext: Uint8Array | undefined): AppContent | undefined {
  if (!plaintext) return undefined;
  try {
    return decodeContent(plaintext);
  } catch {
    return undefined;
  }
}

function replayEntry(opened: OpenedEnvelope): { digest: string; expiresAt: UnixSeconds } {
  return {
    digest: opened.digest,
    expiresAt: (opened.envelope.sentAt + SENT_AT_WINDOW_SECONDS + 60) as UnixSeconds,
  };
}
