/**
 * 1:1 sessions (PROTOCOL.md §5–7, §10) for RelayClient, the inbound half of the shell: Welcomes and
 * messages from the inbox, each in its sender's lane. The steps (steps/direct-*.ts) decide, the
 * shell commits; the publishing of what was committed, then the events and follow-ups, come after
 * the commit and outside the lane (after-commit.ts), so the message is acknowledged once durable.
 */
import type { UnixSeconds, UserIdHex } from './brand.js';
import { toHex } from './bytes.js';
import { checkContentSender, senderEntries } from './content-senders.js';
import type { DropReason } from './drops.js';
import { ProtocolError } from './errors.js';
import { runHandler, type ReceivedMessage } from './handler.js';
import { digestHex, replayEntry, type OpenedEnvelope } from './inbound-envelope.js';
import { userIdToHex } from './identity.js';
import * as mls from './mls/index.js';
import { unconfirmedContent } from './outgoing-content.js';
import type { GroupConversationRecord, OutboxRecord, PeerRecord, SessionRecord } from './store.js';
import { DirectOutbound } from './direct-outbound.js';
import { directMessage } from './steps/direct-message.js';
import { directReplies } from './steps/direct-replies.js';
import { directWelcome, directWelcomeMembers } from './steps/direct-welcome.js';
import { admitWelcome } from './welcome-admission.js';

export { type DirectShellDeps, type OutgoingContent } from './direct-outbound.js';

/** PROTOCOL.md §10: a session whose peer never sent an application message expires after a day. */
const UNUSED_SESSION_SECONDS = 86_400;

/** What a handler run adds to the commit of the message it answered. */
interface HandlerOutcome {
  session: SessionRecord;
  state: mls.GroupSession;
  outbox: OutboxRecord[];
  consumed: mls.Consumed[];
  conversationData: Array<{ conversationId: string; json: string }>;
  /** Groups whose bookkeeping records the handler's membership changes. */
  groups: GroupConversationRecord[];
  /** The type and id of each reply sent, for the sender index. */
  sent: Array<{ type?: string; id: string }>;
}

/** The client's 1:1 sessions: what we send (DirectOutbound) and what arrives in our inbox for them. */
export class DirectShell extends DirectOutbound {
  /** Housekeeping: deletes sessions whose peer never wrote within a day, with their access keys. */
  async expireUnused(): Promise<void> {
    const before = (this.deps.ctx.clock.now() - UNUSED_SESSION_SECONDS) as UnixSeconds;
    for (const groupId of await this.deps.store.deleteUnusedSessions(before)) {
      this.deps.accessIndex.removeSession(groupId);
      this.deps.states.forget(groupId);
    }
  }

  /** msg_type 1 (§5), in the sender's lane. */
  async receiveWelcome(
    opened: OpenedEnvelope,
    sender: UserIdHex,
    now: UnixSeconds,
  ): Promise<DropReason | undefined> {
    const { store, ctx, quota, log } = this.deps;
    const admitted = await admitWelcome({ store, mls: ctx.mls, quota, log }, opened, sender, now, {
      tooLarge: 'welcome_invalid',
      rejected: 'welcome rejected',
    });
    if (!admitted.ok) return admitted.reason;
    const { joined, digest, sealKey } = admitted;
    const binding = directWelcomeMembers(joined, opened.inner, ctx.seal.identity.signingPublic);
    if (binding) return binding;
    const step = await directWelcome(
      ctx,
      { existing: await store.getSessionByPeer(sender), known: await store.getPeer(sender) },
      { joined, opened, sender, digest, sealKey, now },
    );
    await this.deps.states.save(step.commit, step.decoded);
    if (step.replaces) this.deps.accessIndex.removeSession(step.replaces);
    if (step.session) this.indexSession(step.session);
    void this.queueAfter(sender, (step.commit.outbox?.length ?? 0) > 0, () => {
      for (const e of step.events) this.deps.events.emit('session', e);
      for (const f of step.followUps) {
        // A fresh bundle (PROTOCOL.md §4), and texts re-sent through send(), each in its own time.
        if (f.kind === 'republish') this.deps.bundles.scheduleRepublish(false);
        else for (const t of f.texts) void this.sendText(f.peer, t);
      }
    });
    return step.drop;
  }

  /** msg_type 2 (§6, §7), in the sender's lane: MLS, the handler and its replies, one commit. */
  async receiveMessage(
    opened: OpenedEnvelope,
    sender: UserIdHex,
    now: UnixSeconds,
  ): Promise<DropReason | undefined> {
    const { inner, message } = opened;
    // Decoded once at the edge (inbound-envelope.ts); absent when the bytes are no PrivateMessage.
    if (!message) return 'mls';
    const groupId = toHex(message.groupId);
    if (opened.tokenSession !== undefined && opened.tokenSession !== groupId) return 'access_session';
    const digest = digestHex(inner.mls);
    // The envelope's store replay check rides on this read (inbound-envelope.ts left it to us).
    const envelope = opened.replayCheckDeferred ? { digest: opened.digest, now } : undefined;
    const loaded = await this.deps.states.loadDirect(groupId, digest, envelope);
    if (!loaded) return 'unknown_session';
    if (loaded.envelopeSeen) return 'replay';
    const step = await directMessage(this.deps.ctx, loaded, { inner, message, sender, now }, (err) =>
      this.deps.log.debug({ err }, 'mls rejected message'),
    );
    if (step.drop) return step.drop;
    const { state: processedState } = step;
    // §8: an edit, delete or stream part of another sender's message is dropped, the ratchet kept.
    const refused = step.received && (await this.refusedContent(groupId, step.received));
    const received = refused ? undefined : step.received;
    const peer = loaded.peer;
    if (!peer) throw new ProtocolError(`no keys known for ${loaded.session.peerId}`);
    if (inner.sealedSenderKey) peer.sealKey = inner.sealedSenderKey;
    const replies = received ? await this.runHandler(received, processedState, step.next, peer) : undefined;
    const senders = [
      ...(received ? senderEntries(groupId, received.content, sender, now) : []),
      ...(replies?.sent ?? []).flatMap((r) =>
        senderEntries(groupId, r, userIdToHex(this.deps.ctx.selfId), now),
      ),
    ];
    // `state` is encoded once, from whichever MLS state is committed (after the replies).
    const finalState = replies?.state ?? processedState;
    // The replies may have committed the peer's proposals: a new epoch, with new access keys.
    const next = replies?.session ?? step.next;
    await this.commit(
      {
        conversations: [
          { ...next, kind: 'direct', state: mls.encodeSession(finalState) },
          ...(replies?.groups ?? []),
        ],
        ...(inner.sealedSenderKey ? { peers: [peer] } : {}),
        processed: { groupId: next.groupId, digest, at: now },
        envelope: replayEntry(opened),
        ...(replies ? { outbox: replies.outbox, conversationData: replies.conversationData } : {}),
        ...(senders.length > 0 ? { messageSenders: senders } : {}),
      },
      finalState,
    );
    // The new state is durable: only now may the keys it no longer needs be erased.
    mls.wipeConsumed(step.consumed);
    for (const c of replies?.consumed ?? []) mls.wipeConsumed(c);
    this.indexSession(next);
    const application = step.kind === 'application' && received;
    void this.queueAfter(sender, (replies?.outbox.length ?? 0) > 0, () => {
      if (application) this.deps.events.emit('message', application);
      if (replies?.groups.length) this.deps.groups.carryOut(replies.groups.map((g) => g.groupId));
    });
    if (step.kind !== 'application') return undefined;
    // MLS accepted it: the ratchet moved on even if the application cannot read it (PROTOCOL.md §10).
    return received ? undefined : (refused ?? 'content');
  }

  /** The §8 sender check (content-senders.ts); logs what it refuses at debug level. */
  private async refusedContent(groupId: string, m: ReceivedMessage): Promise<DropReason | undefined> {
    const reason = await checkContentSender(this.deps.store, groupId, m.content, m.from);
    if (reason)
      this.deps.log.debug({ groupId, from: m.from, type: m.content.type, reason }, 'content refused');
    return reason;
  }

  /** A message a superseded session left unsent, sent again, whole and under its id, in the new one. */
  private async sendText(peer: UserIdHex, entry: string): Promise<void> {
    try {
      const content = unconfirmedContent(entry);
      await this.send(peer, { ...content, id: content.id ?? this.deps.ctx.random.uuid() }, []);
    } catch (e) {
      this.deps.fail(e);
    }
  }

  /**
   * Runs the transactional handler: its replies are encrypted with the state that processed the
   * message and committed together with it, so a crash either loses both or keeps both.
   */
  private async runHandler(
    message: ReceivedMessage,
    state: mls.GroupSession,
    session: SessionRecord,
    peer: PeerRecord,
  ): Promise<HandlerOutcome | undefined> {
    const handler = this.deps.handler();
    if (!handler) return undefined;
    const run = await runHandler(
      handler,
      message,
      (id) => this.deps.store.getConversationData(id),
      (e) => this.deps.fail(e),
    );
    const replies = await directReplies(
      this.deps.ctx,
      { session, state, peer },
      { replies: run.replies, answered: message.content, check: this.deps.outboxRowError },
    );
    for (const e of replies.refused) this.deps.fail(e);
    return {
      state: replies.state,
      consumed: replies.consumed,
      // The caller encodes `state` into the record it commits.
      session: replies.session,
      outbox: replies.outbox,
      conversationData: run.conversationData,
      groups: await this.deps.groups.recordChanges(run.changes, this.deps.ctx.clock.now()),
      sent: replies.sent,
    };
  }
}
