/**
 * N-way groups (PROTOCOL.md §9) for RelayClient, the inbound half of the shell: PrivateMessages on
 * the group topic, group Welcomes and GROUP_REJOIN on the inbox, and asking for a re-add when we
 * fell behind. Every group has one lane (keyed by its topic) in the client's serial queue, so its
 * MLS state moves one message at a time; the steps (steps/group-*.ts) decide, the shell commits.
 */
import { allRan } from './after-commit.js';
import type { UnixSeconds, UserIdHex } from './brand.js';
import { toHex } from './bytes.js';
import { checkContentSender } from './content-senders.js';
import type { DropReason } from './drops.js';
import { ArgumentError } from './errors.js';
import { GroupOutbound } from './group-outbound.js';
import { GroupRecords, type Loaded } from './group-records.js';
import type { FetchedPeerBundle, GroupOptions } from './group-types.js';
import { runHandler } from './handler.js';
import { userIdFromHex, userIdToHex } from './identity.js';
import { digestHex, type OpenedEnvelope } from './inbound-envelope.js';
import type { GroupShellDeps } from './group-lanes.js';
import * as mls from './mls/index.js';
import { retryStale } from './retry-stale.js';
import { groupMessage, readGroupPayload } from './steps/group-message.js';
import {
  groupApplication,
  groupCommitted,
  groupProposal,
  groupReceived,
  groupRemoved,
  type ProcessedMark,
} from './steps/group-received.js';
import {
  checkRejoin,
  readRejoin,
  rejoinAsk,
  rejoinAsked,
  rejoinDue,
  rejoinGivenUp,
  serveRejoin,
} from './steps/group-rejoin.js';
import { usableForWelcome } from './steps/group-commit.js';
import { groupWelcome, groupWelcomeBinding } from './steps/group-welcome.js';
import { hexId, type GroupStepContext, type GroupWrite } from './steps/group-write.js';
import { admitWelcome } from './welcome-admission.js';

export type { GroupShellDeps } from './group-lanes.js';

/** The client's parts, before the group options are applied. */
export type GroupShellParts = Omit<
  GroupShellDeps,
  'ctx' | 'maxTreeNodes' | 'commitDelayMs' | 'allowInvitesFrom'
> & { ctx: Omit<GroupStepContext, 'maxMembers'> };

/** The group options, checked, as the shell's limits. */
function withOptions(parts: GroupShellParts, options: GroupOptions): GroupShellDeps {
  const maxMembers = options.maxMembers ?? 250;
  if (maxMembers < 2 || maxMembers > 250) {
    throw new ArgumentError('groups.maxMembers must be between 2 and 250 (PROTOCOL.md §9)');
  }
  return {
    ...parts,
    ctx: { ...parts.ctx, maxMembers },
    maxTreeNodes: options.maxTreeNodes ?? 2047,
    commitDelayMs: Math.min(options.commitDelayMs ?? 200, 2000),
    allowInvitesFrom:
      options.allowInvitesFrom && new Set(options.allowInvitesFrom.map((u) => userIdToHex(userIdFromHex(u)))),
  };
}

export class GroupShell extends GroupOutbound {
  private readonly rejoining = new Set<string>();

  constructor(parts: GroupShellParts, options: GroupOptions = {}) {
    const deps = withOptions(parts, options);
    super(deps, new GroupRecords(deps.store, deps.ctx.clock, deps.states));
  }

  // ------------------------------------------------------------------ the group topic

  /** Joins the group's lane at arrival, so a group's messages are processed in broker order. */
  receiveTopic(topicId: string, payload: Uint8Array): Promise<DropReason | undefined> {
    // No lane for a topic we are not in: nothing to order there.
    if (!this.topics.has(topicId)) return Promise.resolve('unknown_group');
    // A failure that is not a drop is retried in the lane, so the group's later messages wait.
    return this.lane(topicId, () =>
      this.laneRetry.run(() =>
        this.dropOnInputError('mls', () => retryStale(() => this.processTopicMessage(topicId, payload))),
      ),
    );
  }

  private async processTopicMessage(topicId: string, payload: Uint8Array): Promise<DropReason | undefined> {
    const read = readGroupPayload(payload, this.deps.maxEnvelopeBytes);
    if ('drop' in read) return read.drop;
    const groupId = this.topics.get(topicId);
    if (groupId === undefined) return 'unknown_group';
    if (toHex(read.header.groupId) !== groupId) return 'group_payload';
    const digest = digestHex(read.message);
    const found = await this.records.loadForMessage(groupId, digest);
    if (!found) return 'unknown_group';
    const { loaded } = found;
    const ctx = this.deps.ctx;
    const step = await groupMessage(
      ctx,
      { state: loaded.state, processed: found.processed },
      read,
      { maxMembers: ctx.maxMembers },
      // The clear header and our epoch say which case it was (a past epoch, a fork, a lost proposal).
      (err) =>
        this.deps.log.debug(
          {
            err,
            groupId,
            epoch: read.header.epoch.toString(),
            contentType: read.header.contentType,
            ours: mls.epochOf(loaded.state).toString(),
          },
          'group message rejected',
        ),
    );
    if (step.drop) {
      if (step.followUp === 'rejoin') this.fellBehind(groupId);
      return step.drop;
    }
    const { result } = step;
    const processed = { groupId: loaded.record.groupId, digest, at: ctx.clock.now() };
    switch (result.kind) {
      case 'removed':
        return this.commitInbound(topicId, groupRemoved(loaded, processed));
      case 'proposal':
        return this.commitInbound(topicId, groupProposal(loaded, result, processed));
      case 'commit':
        return this.commitInbound(topicId, groupCommitted(ctx, loaded, result, processed));
      case 'application':
        return this.onApplication(loaded, result, processed);
    }
  }

  /**
   * In the lane: the commit. Publishing, events and follow-ups come after it without holding the
   * message back: it is acknowledged to the broker once the commit is durable.
   */
  private async commitInbound(
    topicId: string,
    write: GroupWrite,
    drop?: DropReason,
    then?: () => void,
  ): Promise<DropReason | undefined> {
    await this.keep(topicId, write, [], then);
    return drop;
  }

  private async onApplication(
    loaded: Loaded,
    result: mls.ProcessedGroupMessage,
    processed: ProcessedMark,
  ): Promise<DropReason | undefined> {
    const decoded = groupReceived(loaded, result, processed.at);
    // §8: an edit, delete or stream part of another member's message is dropped, the ratchet kept.
    const refused =
      decoded &&
      (await checkContentSender(this.deps.store, processed.groupId, decoded.content, decoded.from));
    if (refused) {
      this.deps.log.debug(
        { groupId: processed.groupId, from: decoded.from, type: decoded.content.type, reason: refused },
        'content refused',
      );
    }
    const received = refused ? undefined : decoded;
    const handler = this.deps.handler();
    const run =
      received &&
      handler &&
      (await runHandler(
        handler,
        received,
        (id) => this.deps.store.getConversationData(id),
        (e) => this.deps.fail(e),
      ));
    const changed = run ? await this.recordChanges(run.changes, processed.at, loaded.record.groupId) : [];
    const step = await groupApplication(this.deps.ctx, loaded, {
      result,
      received,
      run: run || undefined,
      changed,
      check: this.deps.outboxRowError,
      processed,
    });
    for (const e of step.refused) this.deps.fail(e);
    return this.commitInbound(
      loaded.record.topicId,
      step.write,
      refused ?? step.drop,
      received && (() => this.deps.events.emit('message', received)),
    );
  }

  // ------------------------------------------------------------------ falling behind (§9)

  /** A message from an epoch above ours: ask the committer to remove and re-add us. */
  protected fellBehind(groupId: string): void {
    if (this.rejoining.has(groupId)) return;
    this.rejoining.add(groupId);
    this.track(this.requestRejoin(groupId).finally(() => this.rejoining.delete(groupId)));
  }

  private async requestRejoin(groupId: string): Promise<void> {
    const first = await this.records.load(groupId);
    if (!first) return;
    const now = this.deps.ctx.clock.now();
    const due = rejoinDue(first, now);
    const topicId = first.record.topicId;
    const settled: Promise<void>[] = [];
    if (due.kind === 'give-up') {
      await this.lane(topicId, () => this.keep(topicId, rejoinGivenUp(first), settled));
      return allRan(settled);
    }
    if (due.kind !== 'ask') return;
    const bundle = await this.deps.bundles.fetch(hexId(due.committer.userId));
    const ask = await rejoinAsk(this.deps.ctx, first, {
      identityKey: due.committer.identityKey,
      bundle: bundle.record,
    });
    await this.deps.store.putKeyPackage(ask.keyPackage);
    await this.lane(topicId, () =>
      retryStale(async () => {
        const loaded = await this.records.load(groupId);
        if (loaded) await this.keep(topicId, rejoinAsked(loaded, ask, now), settled);
      }),
    );
    this.deps.log.info({ groupId }, 'fell behind; asked the committer to re-add us');
    await allRan(settled);
  }

  // ------------------------------------------------------------------ the inbox

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
    const { store, quota, log, ctx, allowInvitesFrom, maxTreeNodes } = this.deps;
    const admitted = await admitWelcome({ store, mls: ctx.mls, quota, log }, opened, sender, now, {
      ...(allowInvitesFrom && !allowInvitesFrom.has(sender)
        ? { refuseSender: 'group_invite_refused' as const }
        : {}),
      limits: { members: { min: 2, max: ctx.maxMembers }, maxTreeNodes },
      tooLarge: 'group_too_large',
      rejected: 'group welcome rejected',
    });
    if (!admitted.ok) return admitted.reason;
    const { joined, digest, sealKey } = admitted;
    const binding = groupWelcomeBinding(joined, opened.inner);
    if (binding) return binding;
    const step = groupWelcome(
      {
        existing: await store.getGroup(toHex(mls.groupIdOf(joined.state))),
        known: await store.getPeer(sender),
      },
      { joined, opened, sender, digest, sealKey, now },
    );
    if (step.drop) return step.drop;
    // §9: subscribe to the topic first, then publish a fresh bundle. In the group's lane, with the
    // topic known before the subscription: a message (a commit above all) arriving while the group
    // is stored waits behind it instead of being dropped as an unknown group, which would leave us
    // an epoch behind for good.
    const known = this.topics.has(step.topicId);
    await this.lane(step.topicId, async () => {
      this.topics.set(step.topicId, step.groupId);
      try {
        await this.subscribe(step.topicId);
        await this.commit(step.write);
      } catch (e) {
        if (!known) this.topics.delete(step.topicId);
        throw e;
      }
      this.queueAfter(step.topicId, step.write, []);
    });
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
    const request = readRejoin(opened);
    if ('drop' in request) return request.drop;
    const { groupId } = request;
    const first = await this.records.load(groupId);
    const identityKey = opened.inner.senderIdentityKey;
    const refused = await checkRejoin(this.deps.ctx, first, request, { userId: sender, identityKey }, now);
    if (refused || !first) return refused ?? 'rejoin_invalid';
    let bundle: FetchedPeerBundle;
    try {
      bundle = await this.deps.bundles.fetch(sender);
    } catch {
      return 'bundle_invalid';
    }
    // §9: the Welcome that re-adds it is mined only up to 24 bits.
    if (!usableForWelcome(bundle)) return 'rejoin_invalid';
    let outcome: DropReason | undefined;
    const topicId = first.record.topicId;
    await this.lane(topicId, () =>
      retryStale(async () => {
        const loaded = await this.records.load(groupId);
        const step = await serveRejoin(this.deps.ctx, loaded, { opened, sender, bundle: bundle.record, now });
        if (step.drop) {
          outcome = step.drop;
          return;
        }
        await this.keep(topicId, step.write, []);
      }),
    );
    if (outcome) return outcome;
    this.deps.log.info({ groupId, member: sender }, 're-added a member that fell behind');
    return undefined;
  }
}
