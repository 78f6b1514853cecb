/**
 * The group calls we start (PROTOCOL.md §9) and the time-driven ones: create, add, remove, leave,
 * key refresh, posting, the committer's batched commit and carrying out stored intents. Each loads
 * the group in its lane, runs a step (steps/group-*.ts) and hands the write to the shell.
 */
import { allRan } from './after-commit.js';
import type { UserIdHex } from './brand.js';
import { ArgumentError } from './errors.js';
import { parseGroupMeta } from './group-meta.js';
import {
  committerRefreshDue,
  MAX_WELCOME_POW_BITS,
  mayCommit,
  memberRefreshDue,
  proposalsOrphaned,
  refreshMayBeDue,
} from './group-policy.js';
import { GroupLanes } from './group-lanes.js';
import { updatedRecord, type Loaded } from './group-records.js';
import type { FetchedPeerBundle, GroupInfo, HandlerData } from './group-types.js';
import type { GroupChanges } from './handler.js';
import { userIdFromHex, userIdToHex } from './identity.js';
import { MAX_MINED_POW_BITS } from './labels.js';
import * as mls from './mls/index.js';
import type { GroupConversationRecord } from './store.js';
import {
  groupAdd,
  groupLeave,
  groupRefreshKeys,
  groupRemove,
  groupReplaceCommitter,
  newMembers,
  STALE_PROPOSAL_SECONDS,
} from './steps/group-change.js';
import { commitInvitees, groupCommitPending, usableForWelcome } from './steps/group-commit.js';
import { groupCreate, groupInvitees } from './steps/group-create.js';
import { intentWork, mergeIntents } from './steps/group-intents.js';
import { groupSend, refreshBeforeGroupSend } from './steps/group-send.js';
import type { OutgoingContent } from './direct-outbound.js';
import { hexId, unique } from './steps/group-write.js';

export abstract class GroupOutbound extends GroupLanes {
  /** The topics of the stored groups at the last listing (restore, syncTopics). */
  private lastListed = new Set<string>();

  /**
   * Loads which topics are ours. Runs before connecting: a persistent broker session delivers
   * queued group messages right after CONNACK, and they must not be mistaken for strangers'.
   */
  async restore(): Promise<void> {
    this.running = true;
    const groups = await this.deps.store.listGroupSummaries();
    for (const g of groups) this.topics.set(g.topicId, g.groupId);
    this.lastListed = new Set(groups.map((g) => g.topicId));
  }

  /**
   * Replicas (issue 13): a group another replica joined (it took the Welcome) or left reaches this
   * one only through the store. Subscribes (shared) to the stored groups it does not know and
   * unsubscribes those that were stored at the last listing and are gone now. Groups this replica
   * set up itself after that listing are left alone: they are subscribed before they are stored.
   */
  async syncTopics(): Promise<{ subscribed: string[]; unsubscribed: string[] }> {
    const subscribed: string[] = [];
    const unsubscribed: string[] = [];
    if (!this.running) return { subscribed, unsubscribed };
    const stored = new Map((await this.deps.store.listGroupSummaries()).map((g) => [g.topicId, g.groupId]));
    for (const [topicId, groupId] of stored) {
      if (this.topics.has(topicId)) continue;
      // Known before subscribing: the broker may deliver at once, and it must not look foreign.
      this.topics.set(topicId, groupId);
      try {
        await this.subscribe(topicId);
      } catch (e) {
        this.topics.delete(topicId); // tried again on the next sync
        throw e;
      }
      subscribed.push(topicId);
    }
    for (const topicId of this.lastListed) {
      if (stored.has(topicId) || !this.topics.has(topicId)) continue;
      const groupId = this.topics.get(topicId)!;
      this.topics.delete(topicId);
      this.records.forget(groupId);
      await this.deps.transport.unsubscribe(this.topicOf(topicId)).catch(() => undefined);
      unsubscribed.push(topicId);
    }
    this.lastListed = new Set(stored.keys());
    return { subscribed, unsubscribed };
  }

  /** Re-subscribes every stored group (PROTOCOL.md §9 "Delivery") and resumes pending commits. */
  async start(): Promise<void> {
    // Summaries, not states: an MLS state is read only for a group whose proposals wait (§10).
    const groups = await this.deps.store.listGroupSummaries();
    for (let i = 0; i < groups.length; i += 100) {
      await Promise.all(groups.slice(i, i + 100).map((g) => this.subscribe(g.topicId)));
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

  /**
   * The time-driven rules of §9, run with the client's housekeeping (at start-up and every 10
   * minutes, and on the replica that takes DUTY.housekeeping over): key refresh after 7 days even
   * in a quiet group, proposals whose batch timer was lost with a replica are committed, and a
   * committer that left a proposal waiting 7 days is proposed for removal, so the next member
   * takes over.
   */
  async housekeeping(): Promise<void> {
    const now = this.deps.ctx.clock.now();
    const every = this.deps.ctx.updateEveryMessages;
    for (const summary of await this.deps.store.listGroupSummaries()) {
      const summaryMeta = parseGroupMeta(summary.meta, now);
      const stale =
        summaryMeta.pendingSince !== undefined && now - summaryMeta.pendingSince >= STALE_PROPOSAL_SECONDS;
      const orphaned = proposalsOrphaned(summaryMeta, now);
      // Nothing can be due: the MLS state is not read.
      if (!stale && !orphaned && !refreshMayBeDue(summaryMeta, now, every)) continue;
      const loaded = await this.records.load(summary.groupId);
      if (!loaded) continue;
      const { record, state, meta } = loaded;
      if (mls.isCommitter(state)) {
        // Proposals whose batch timer died with the replica that received them: committed now,
        // whatever timer of ours may be pending (the compare-and-set keeps it to one commit).
        if (proposalsOrphaned(meta, now)) this.track(this.commitPendingNow(record.groupId));
        else if (committerRefreshDue(meta, now, every)) this.scheduleCommit(record.groupId);
      } else if (meta.pendingSince !== undefined && now - meta.pendingSince >= STALE_PROPOSAL_SECONDS) {
        this.track(this.replaceCommitter(record.groupId));
      } else if (memberRefreshDue(state, meta, now, every)) {
        this.track(this.updateKeys(record.groupId));
      }
    }
  }

  protected async replaceCommitter(groupId: string): Promise<void> {
    await this.inLane(groupId, async (loaded, keep) => {
      const write = await groupReplaceCommitter(this.deps.ctx, loaded);
      await keep(write);
      if (write) this.deps.log.warn({ groupId }, "proposals waited 7 days: proposed the committer's removal");
    });
  }

  /**
   * A handler's membership changes as intents in the groups' bookkeeping, to be committed with its
   * message; `carryOut` acts on them once that commit is durable. The message's own group (about
   * to be written anyway) records them itself.
   */
  async recordChanges(changes: GroupChanges, now: number, skip?: string): Promise<GroupConversationRecord[]> {
    const records: GroupConversationRecord[] = [];
    for (const [groupId, intents] of changes.entries()) {
      if (groupId === skip) continue;
      const loaded = await this.records.load(groupId);
      if (!loaded) {
        this.deps.log.warn({ groupId }, 'a handler asked to change a group we are not in; ignored');
        continue;
      }
      mergeIntents(loaded.meta, intents);
      records.push(updatedRecord(loaded.record, loaded.state, loaded.meta, now, loaded.state));
    }
    return records;
  }

  /** Carries out the stored intents of these groups (after a commit, or at start-up). */
  carryOut(groupIds: Iterable<string>): void {
    for (const groupId of new Set(groupIds)) this.track(this.reassert(groupId));
  }

  /** Proposals the last commit did not carry are made again in the new epoch (§9). */
  private async reassert(groupId: string): Promise<void> {
    const loaded = await this.records.load(groupId);
    if (!loaded || loaded.meta.intents.length === 0) return;
    const work = intentWork(loaded.meta.intents);
    const debug = (e: unknown) => this.deps.log.debug({ err: String(e) });
    if (work.adds.length) await this.add(groupId, work.adds).catch(debug);
    if (work.removes.length) await this.remove(groupId, work.removes).catch(debug);
    if (work.leave && (await this.records.load(groupId))) await this.leave(groupId);
  }

  // ------------------------------------------------------------------ reading

  async info(groupId: string): Promise<GroupInfo | undefined> {
    const loaded = await this.records.load(groupId);
    return loaded && describe(loaded);
  }

  async list(): Promise<GroupInfo[]> {
    const records = await this.deps.store.listGroups();
    const now = this.deps.ctx.clock.now();
    return records.map((record) =>
      describe({ record, state: this.records.decoded(record), meta: parseGroupMeta(record.meta, now) }),
    );
  }

  // ------------------------------------------------------------------ our calls

  /** Creates a group with us as committer and invites `members` (PROTOCOL.md §9 "Invitation"). */
  async create(members: readonly string[], opts: { name?: string } = {}): Promise<GroupInfo> {
    const ids = groupInvitees(this.deps.ctx, members, opts.name);
    const bundles = await this.fetchInvitees(ids);
    const created = await groupCreate(this.deps.ctx, bundles, opts.name);
    // Subscribed before anyone is invited, so nothing a new member posts is missed.
    await this.subscribe(created.topicId);
    this.topics.set(created.topicId, created.groupId);
    const settled: Promise<void>[] = [];
    await this.lane(created.topicId, () => this.keep(created.topicId, created.write, settled));
    await allRan(settled);
    return (await this.info(created.groupId))!;
  }

  /** The committer adds at once; anyone else proposes the Adds for the committer to commit. */
  async add(groupId: string, userIds: readonly string[]): Promise<void> {
    const first = await this.records.require(groupId);
    const ids = newMembers(this.deps.ctx, first.state, userIds);
    if (ids.length === 0) return;
    // §9: the committer mines group Welcome PoW only up to 24 bits; a proposer up to §4's limit.
    const maxBits = mls.isCommitter(first.state) ? MAX_WELCOME_POW_BITS : MAX_MINED_POW_BITS;
    const bundles = await this.fetchInvitees(ids, maxBits);
    await this.inLane(groupId, async (loaded, keep) => keep(await groupAdd(this.deps.ctx, loaded, bundles)));
  }

  async remove(groupId: string, userIds: readonly string[]): Promise<void> {
    const ids = unique(userIds.map((u) => userIdToHex(userIdFromHex(u))));
    if (ids.includes(userIdToHex(this.deps.ctx.selfId)))
      throw new ArgumentError('to remove yourself, use leaveGroup()');
    await this.inLane(groupId, async (loaded, keep) => keep(await groupRemove(this.deps.ctx, loaded, ids)));
  }

  /** Proposes our own Remove; the last member leaves at once. */
  async leave(groupId: string): Promise<void> {
    await this.inLane(groupId, async (loaded, keep) => keep(await groupLeave(this.deps.ctx, loaded)));
  }

  /** Key refresh on demand: the committer commits with a path, others propose an Update. */
  async updateKeys(groupId: string): Promise<void> {
    await this.inLane(groupId, async (loaded, keep) => keep(await groupRefreshKeys(this.deps.ctx, loaded)));
  }

  async send(groupId: string, content: OutgoingContent, data: HandlerData): Promise<void> {
    await this.inLane(groupId, async (loaded, keep) => {
      let current = loaded;
      if (refreshBeforeGroupSend(this.deps.ctx, loaded)) {
        const refreshed = await groupRefreshKeys(this.deps.ctx, loaded);
        await keep(refreshed);
        current = refreshed?.next ?? loaded;
      }
      await keep(await groupSend(this.deps.ctx, current, content, data));
    });
  }

  // ------------------------------------------------------------------ the committer

  protected async commitPendingNow(groupId: string): Promise<void> {
    const first = await this.records.load(groupId);
    if (!first || !mayCommit(first.state)) return;
    // Invitees' bundles give the sealed-sender key and pow_bits for their Welcomes; fetched before
    // entering the lane so that network waits never hold the group's state.
    const bundles = new Map<string, FetchedPeerBundle>();
    await Promise.all(
      commitInvitees(first).map(async (id) => {
        try {
          const b = await this.deps.bundles.fetch(id);
          if (usableForWelcome(b)) bundles.set(id, b);
          else this.deps.log.debug({ invitee: id, powBits: b.powBits }, 'Add left out: PoW over 24 bits');
        } catch (e) {
          this.deps.log.debug({ err: (e as Error).message, invitee: id }, 'invitee bundle unavailable');
        }
      }),
    );
    await this.inLane(groupId, async (loaded, keep) => {
      const step = await groupCommitPending(this.deps.ctx, loaded, bundles);
      if (step.discarded) this.deps.log.debug({ err: step.discarded, groupId }, 'proposal set discarded');
      await keep(step.write);
    });
  }

  protected async fetchInvitees(
    ids: readonly UserIdHex[],
    maxBits = MAX_WELCOME_POW_BITS,
  ): Promise<FetchedPeerBundle[]> {
    return Promise.all(
      ids.map(async (id) => {
        let b: FetchedPeerBundle;
        try {
          b = await this.deps.bundles.fetch(id);
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

function describe({ record, state, meta }: Loaded): GroupInfo {
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
