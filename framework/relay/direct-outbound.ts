/**
 * The 1:1 half of the client shell (PROTOCOL.md §5–7), the calls we start: sending, with first
 * contact (a Welcome with proof of work) when there is no session yet, and the key refresh due
 * before a message. Each runs a step (steps/direct-*.ts) in the peer's lane and commits its write;
 * publishing and the events follow outside the lane (after-commit.ts). Network waits (bundle
 * fetch, the broker's PUBACKs) stay outside the lane too.
 */
import type { Logger } from 'pino';
import type { AccessIndex } from './access.js';
import { AfterCommit, allRan } from './after-commit.js';
import { groupIdHexOf, type UserIdHex } from './brand.js';
import type { FetchedBundle } from './bundles.js';
import type { ContentInput } from './content.js';
import { senderEntries } from './content-senders.js';
import type { ConversationStates } from './conversation-states.js';
import { inboxRow, sealWithPow } from './direct-seal.js';
import type { InnerPayload } from './envelope.js';
import { ProtocolError } from './errors.js';
import type { GroupReceivedMessage } from './group-types.js';
import type { DirectReceivedMessage, GroupChanges, TransactionalHandler } from './handler.js';
import { signSealedSenderKey, userIdToHex } from './identity.js';
import type { KeyedSerialQueue } from './keyed-queue.js';
import { MAX_MINED_POW_BITS, MSG_TYPE } from './labels.js';
import * as mls from './mls/index.js';
import type { OutboxRowCheck } from './outbox-quarantine.js';
import { retryStale } from './retry-stale.js';
import type {
  GroupConversationRecord,
  InboundCommit,
  RelayStore,
  SessionAccessRecord,
  SessionRecord,
} from './store.js';
import {
  directCommitPending,
  directEncrypt,
  directProposeUpdate,
  refreshBeforeSend,
  type DirectSendContext,
} from './steps/direct-send.js';
import { newDirectSession } from './steps/direct-session.js';
import type { SessionEvent } from './steps/direct-welcome.js';
import type { WelcomeQuota } from './welcome-quota.js';

/** A message we send: any §8 content (ContentInput), with the id RelayClient gave it if it had none. */
export type OutgoingContent = ContentInput & { id: string };

/** The client's parts the 1:1 shell drives: store, lanes, bundles, outbox, groups and its events. */
export interface DirectShellDeps {
  ctx: DirectSendContext;
  store: RelayStore;
  states: ConversationStates;
  queue: KeyedSerialQueue;
  /** The access keys of our sessions, which the envelope checks look hints up in. */
  accessIndex: AccessIndex;
  log: Logger;
  quota: WelcomeQuota;
  /** Non-committers propose an Update after this many messages in one epoch (PROTOCOL.md §7). */
  updateEveryMessages: number;
  bundles: { fetch(peer: UserIdHex): Promise<FetchedBundle>; scheduleRepublish(force: boolean): void };
  outbox: { flush(): Promise<void> };
  outboxRowError: OutboxRowCheck;
  /** A handler's membership changes are recorded with its message and carried out after it. */
  groups: {
    recordChanges(changes: GroupChanges, now: number): Promise<GroupConversationRecord[]>;
    carryOut(groupIds: Iterable<string>): void;
  };
  /** The client's emitter, for 'session' and 'message' events. */
  events: {
    emit(event: 'session', e: SessionEvent): unknown;
    emit(event: 'message', m: DirectReceivedMessage | GroupReceivedMessage): unknown;
  };
  fail(e: unknown): void;
  /** The transactional handler currently set. */
  handler(): TransactionalHandler | undefined;
}

/** Our own 1:1 calls, and what the inbound half shares: committing, indexing and what follows a commit. */
export abstract class DirectOutbound {
  /** Per peer: publishing, events and follow-ups of each commit, in commit order. */
  private readonly afterCommit: AfterCommit;

  constructor(protected readonly deps: DirectShellDeps) {
    this.afterCommit = new AfterCommit({ publish: () => deps.outbox.flush(), fail: (e) => deps.fail(e) });
  }

  /** Indexes the access keys of every stored session (MLS states are read only when needed, §10). */
  async restore(): Promise<void> {
    for (const s of await this.deps.store.listSessionAccess()) this.indexSession(s);
  }

  /** Resolves once the work queued after every commit so far has run. */
  settled(): Promise<void> {
    return this.afterCommit.idle();
  }

  /**
   * Sends to a peer, making first contact when there is no session. Resolves once the broker
   * acknowledged what was committed (and the events of the commits went out).
   */
  async send(
    peerHex: UserIdHex,
    content: OutgoingContent,
    data: InboundCommit['conversationData'],
  ): Promise<void> {
    let bundle: FetchedBundle | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      const settled: Promise<void>[] = [];
      const outcome = await this.deps.queue.run(peerHex, () =>
        retryStale(() => this.sendInLane(peerHex, content, bundle, data ?? [], settled)),
      );
      if (outcome !== 'need-bundle') return allRan(settled);
      bundle = await this.deps.bundles.fetch(peerHex);
    }
    throw new ProtocolError(`could not establish a session with ${peerHex}`);
  }

  /**
   * Commits with the session's record and decoded state, and advances the cached copies to what the
   * store now holds, so the same flow can write the session again.
   */
  protected commit(changes: InboundCommit, decoded?: mls.GroupSession): Promise<void> {
    // A 1:1 commit writes one session; groups a handler changed may ride along.
    const session = changes.conversations?.find((c) => c.kind === 'direct');
    return this.deps.states.save(changes, decoded && session && { groupId: session.groupId, state: decoded });
  }

  /**
   * Queues what follows a commit to `peer`; called in the lane right after it, so in commit order.
   * With `rows`, `then` waits until the broker acknowledged the commit's outbox rows.
   */
  protected queueAfter(peer: string, rows: boolean, then: () => void): Promise<void> {
    return this.afterCommit.run(peer, rows, then);
  }

  protected indexSession(s: SessionAccessRecord): void {
    this.deps.accessIndex.setSession(s.groupId, {
      current: s.inboundAccess.current,
      ...(s.inboundAccess.previous ? { previous: s.inboundAccess.previous } : {}),
    });
  }

  /** Commits each outgoing payload to the outbox with the state that produced it. */
  private async sendInLane(
    peerHex: UserIdHex,
    content: OutgoingContent,
    bundle: FetchedBundle | undefined,
    data: NonNullable<InboundCommit['conversationData']>,
    settled: Promise<void>[],
  ): Promise<'sent' | 'need-bundle'> {
    const { ctx, store } = this.deps;
    let session = await store.getSessionByPeer(peerHex);
    if (!session) {
      if (!bundle) return 'need-bundle';
      session = await this.firstContact(peerHex, bundle, settled);
    }
    const peer = await store.getPeer(peerHex);
    if (!peer) throw new ProtocolError(`no keys known for ${peerHex}`);
    let state = this.deps.states.decoded(session);
    const refresh = refreshBeforeSend(state, session, this.deps.updateEveryMessages);
    if (refresh) {
      const step = refresh === 'commit' ? directCommitPending : directProposeUpdate;
      const written = await step(ctx, session, state, peer);
      await this.commit({ conversations: [written.session], outbox: [written.row] }, written.state);
      settled.push(this.queueAfter(peerHex, true, () => undefined));
      if (refresh === 'commit') this.indexSession(written.session);
      ({ state, session } = written);
    }
    const written = await directEncrypt(ctx, session, state, peer, content);
    const own = senderEntries(session.groupId, content, userIdToHex(ctx.selfId), ctx.clock.now());
    await this.commit(
      {
        conversations: [written.session],
        outbox: [written.row],
        conversationData: data,
        // Our own ids join the sender index: the peer's edit of one of them is dropped (§8).
        ...(own.length > 0 ? { messageSenders: own } : {}),
      },
      written.state,
    );
    settled.push(this.queueAfter(peerHex, true, () => undefined));
    return 'sent';
  }

  private async firstContact(
    peerHex: UserIdHex,
    peer: FetchedBundle,
    settled: Promise<void>[],
  ): Promise<SessionRecord> {
    if (peer.powBits > MAX_MINED_POW_BITS) {
      throw new ProtocolError(
        `${peerHex} demands ${peer.powBits} PoW bits; we mine at most ${MAX_MINED_POW_BITS}`,
      );
    }
    const { ctx } = this.deps;
    const identity = ctx.seal.identity;
    const created = await mls.createOneToOne(ctx.mls, identity, peer.keyPackage);
    const groupId = groupIdHexOf(mls.groupIdOf(created.state));
    const inner: Omit<InnerPayload, 'senderId' | 'senderIdentityKey'> = {
      msgType: MSG_TYPE.welcome,
      mls: created.welcome,
      ratchetTree: created.ratchetTree,
      sealedSenderKey: identity.sealPublic,
      sealedSenderKeySignature: signSealedSenderKey(identity),
    };
    const payload = await sealWithPow(ctx.seal, peer.record, inner);
    const session = await newDirectSession(ctx, created.state, groupId, peerHex, true, ctx.clock.now());
    await this.commit(
      {
        conversations: [session],
        peers: [peer.record],
        outbox: [inboxRow(ctx.seal, peer.record.userId, payload)],
      },
      created.state,
    );
    this.indexSession(session);
    settled.push(
      this.queueAfter(peerHex, true, () =>
        this.deps.events.emit('session', { peer: peerHex, groupId, role: 'initiator' }),
      ),
    );
    return session;
  }
}
