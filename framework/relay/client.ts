/**
 * RelayClient: the composition of identity, bundles, sealing, proof of work, access tokens, MLS
 * sessions and the MQTT transport into one end-to-end encrypted 1:1 messaging client
 * (PROTOCOL.md §1–8). It emits only verified application messages; everything else is dropped
 * with a counted reason.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import { pino, type Logger } from 'pino';
import { AccessIndex } from './access.js';
import { asPowBits, type PowBits, type UnixSeconds, type UserIdHex } from './brand.js';
import { toHex } from './bytes.js';
import { systemClock, type Clock } from './clock.js';
import { DropCounters, type DropReason } from './drops.js';
import type { InnerPayload } from './envelope.js';
import { ArgumentError, ProtocolError, RelayError } from './errors.js';
import {
  generateIdentity,
  identityFromSecrets,
  publicIdentity,
  signSealedSenderKey,
  userIdFromHex,
  userIdToHex,
  type Identity,
  type PublicIdentity,
} from './identity.js';
import { checkEnvelope, digestHex, replayEntry, type OpenedEnvelope } from './inbound-envelope.js';
import { KeyedSerialQueue, QueueFullError } from './keyed-queue.js';
import { DEFAULT_MAX_ENVELOPE_BYTES, DEFAULT_POW_BITS, MAX_MINED_POW_BITS, MSG_TYPE } from './labels.js';
import * as mls from './mls/index.js';
import { withOutboxCheck, type QuarantineNote } from './outbox-quarantine.js';
import { Parking } from './parking.js';
import { PowMiner } from './pow.js';
import { createOpener, type Opener } from './seal.js';
import type {
  GroupRecord,
  InboundCommit,
  OutboxRecord,
  PeerRecord,
  RelayStore,
  SessionAccessRecord,
  SessionRecord,
} from './store.js';
import { GroupShell } from './group-shell.js';
import type { GroupEvent, GroupInfo, GroupOptions } from './group-types.js';
import { runHandler, type ReceivedMessage, type TransactionalHandler } from './handler.js';
export type { GroupChange, HandlerTransaction } from './group-types.js';
import { DEFAULT_TOPIC_PREFIX, inboxTopic, isQos1OnlyTopic, keysTopic, parseTopic } from './topics.js';
import { ReplayCache } from './replay-cache.js';
import { retryStale } from './retry-stale.js';
import { Bundles, type FetchedBundle } from './bundles.js';
import { inboxRow, sealWithPow, type SealContext } from './direct-seal.js';
import { InboxPipeline } from './inbound.js';
import type { StepContext } from './steps/context.js';
import { directMessage } from './steps/direct-message.js';
import { directReplies } from './steps/direct-replies.js';
import {
  directCommitPending,
  directEncrypt,
  directProposeUpdate,
  refreshBeforeSend,
  type DirectSendContext,
} from './steps/direct-send.js';
import { newDirectSession } from './steps/direct-session.js';
import { directWelcome, directWelcomeMembers, type SessionEvent } from './steps/direct-welcome.js';
import { admitWelcome } from './welcome-admission.js';
import { OutboxPublisher } from './outbox-publisher.js';
import { MqttTransport, type InboundMessage, type TransportTlsOptions } from './transport.js';
import type { PublishTooLargeError } from './transport-packet-size.js';
import { ConversationStates } from './conversation-states.js';
import { WelcomeQuota, DEFAULT_WELCOME_QUOTA, type WelcomeQuotaLimits } from './welcome-quota.js';

export type { DirectReceivedMessage, ReceivedMessage, ReplyFn, TransactionalHandler } from './handler.js';

export type { SessionEvent } from './steps/direct-welcome.js';

/** The events a RelayClient emits, with their payloads. */
export interface RelayClientEvents {
  message: (m: ReceivedMessage) => void;
  session: (s: SessionEvent) => void;
  /** Group membership: created, joined, members changed, rejoined, left (PROTOCOL.md §9). */
  group: (e: GroupEvent) => void;
  drop: (d: { reason: DropReason; topic: string }) => void;
  security: (e: { kind: 'sender_binding'; claimedSender: string }) => void;
  /** First contact mined a proof of work (for metrics). */
  pow: (p: { bits: number; seconds: number }) => void;
  /** An outbox row that can never be published was set aside, with its dependents (for metrics). */
  quarantine: (q: QuarantineNote) => void;
  error: (e: Error) => void;
}

/** How to reach the MQTT 5 broker: URL, credentials, TLS files, client id and session expiry. */
export interface BrokerOptions {
  url: string;
  /** CA, client certificate and key for mqtts:// and wss:// (passed to the transport as they are). */
  tls?: TransportTlsOptions;
  username?: string;
  password?: string;
  /** Defaults to one derived from the user id, so a restarted client resumes its MQTT session. */
  clientId?: string;
  sessionExpirySeconds?: number;
}

/** What RelayClient.create() takes: the store, the broker, and the protocol limits. */
export interface RelayClientOptions {
  store: RelayStore;
  broker: BrokerOptions;
  topicPrefix?: string;
  /** Proof-of-work bits our inbox demands (published in our bundle). */
  powBits?: number;
  displayName?: string;
  clock?: Clock;
  logger?: Logger;
  mlsProvider?: 'node' | 'default';
  maxEnvelopeBytes?: number;
  welcomeQuota?: WelcomeQuotaLimits;
  bundleFetchTimeoutMs?: number;
  /** Non-committers propose an Update after this many messages in one epoch (PROTOCOL.md §7). */
  updateEveryMessages?: number;
  /** Mining threads; 0 mines on the event loop in small slices. */
  powWorkers?: number;
  /** Invitation policy and limits for N-way groups. */
  groups?: GroupOptions;
  /**
   * A message whose handler holds back finished later messages this long is parked (stored and
   * acknowledged; parking.ts), so one slow conversation cannot stall the others. Default 300 ms.
   */
  parkAfterMs?: number;
}

/** PROTOCOL.md §10: a session whose peer never sent an application message expires after a day. */
const UNUSED_SESSION_SECONDS = 86_400;

interface HandlerOutcome {
  session: SessionRecord;
  state: mls.GroupSession;
  outbox: OutboxRecord[];
  consumed: mls.Consumed[];
  conversationData: Array<{ conversationId: string; json: string }>;
  /** Groups whose bookkeeping records the handler's membership changes. */
  groups: GroupRecord[];
}

/** An end-to-end encrypted Relay client: 1:1 sessions and groups over MQTT 5, emitting only verified messages. */
export class RelayClient extends EventEmitter<RelayClientEvents> {
  readonly drops = new DropCounters();
  readonly userId: UserIdHex;
  /** User id and public keys; the secrets stay in #secrets, out of reach of the public API. */
  readonly identity: PublicIdentity;
  readonly #secrets: Identity;
  private readonly prefix: string;
  private readonly powBits: PowBits;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly queue = new KeyedSerialQueue();
  private readonly accessIndex = new AccessIndex();
  private readonly replayCache = new ReplayCache();
  private readonly quota: WelcomeQuota;
  private readonly transport: MqttTransport;
  private readonly parking: Parking;
  private readonly outbox: OutboxPublisher;
  private readonly bundles: Bundles;
  private readonly inbox: InboxPipeline;
  private readonly sealing: SealContext;
  private readonly stepCtx: StepContext;
  private readonly sendCtx: DirectSendContext;
  private refreshTimer: NodeJS.Timeout | undefined;
  private handler: TransactionalHandler | undefined;
  private readonly states: ConversationStates;
  private ready: Promise<void> = Promise.resolve();
  private startedUp = false;
  private started = false;
  private readonly groupShell: GroupShell;

  private readonly opts: RelayClientOptions;

  private constructor(
    opts: RelayClientOptions,
    identity: Identity,
    private readonly mlsCtx: mls.MlsContext,
    private readonly opener: Opener,
    private readonly miner: PowMiner,
  ) {
    super();
    this.#secrets = identity;
    this.identity = publicIdentity(identity);
    this.userId = userIdToHex(identity.userId);
    this.prefix = opts.topicPrefix ?? DEFAULT_TOPIC_PREFIX;
    this.powBits = asPowBits(opts.powBits ?? DEFAULT_POW_BITS);
    this.clock = opts.clock ?? systemClock;
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.quota = new WelcomeQuota(this.clock, opts.welcomeQuota ?? DEFAULT_WELCOME_QUOTA);
    this.parking = new Parking({
      store: opts.store,
      clock: this.clock,
      log: this.log,
      process: (m) => this.dispatchInbound(m),
      ...(opts.parkAfterMs !== undefined ? { stallMs: opts.parkAfterMs } : {}),
    });
    this.transport = new MqttTransport({
      url: opts.broker.url,
      clientId: opts.broker.clientId ?? `relay-${this.userId}`,
      ...(opts.broker.username !== undefined ? { username: opts.broker.username } : {}),
      ...(opts.broker.password !== undefined ? { password: opts.broker.password } : {}),
      ...(opts.broker.sessionExpirySeconds !== undefined
        ? { sessionExpirySeconds: opts.broker.sessionExpirySeconds }
        : {}),
      maxPayloadBytes: opts.maxEnvelopeBytes ?? DEFAULT_MAX_ENVELOPE_BYTES,
      ...(opts.broker.tls !== undefined ? { tls: opts.broker.tls } : {}),
      parking: this.parking,
    });
    this.outbox = new OutboxPublisher({
      store: opts.store,
      publish: (topic, payload, o) => this.transport.publish(topic, payload, o),
      clock: this.clock,
      log: this.log,
      onQuarantine: (q) => this.emit('quarantine', q),
      retryAllowed: () => this.started,
    });
    const store = withOutboxCheck(this.outbox.handingRowsOver(opts.store), this.outboxRowError);
    this.opts = { ...opts, store };
    this.states = new ConversationStates(this.opts.store);
    this.bundles = new Bundles({
      identity,
      store: this.opts.store,
      mls: mlsCtx,
      clock: this.clock,
      prefix: this.prefix,
      powBits: this.powBits,
      ...(opts.displayName !== undefined ? { displayName: opts.displayName } : {}),
      ...(opts.bundleFetchTimeoutMs !== undefined ? { fetchTimeoutMs: opts.bundleFetchTimeoutMs } : {}),
      publish: (topic, payload, o) => this.transport.publish(topic, payload, o),
      subscribe: (topic, o) => this.transport.subscribe(topic, o),
      unsubscribe: (topic) => this.transport.unsubscribe(topic),
      onInvalid: (topic, e) => this.dropped('bundle_invalid', topic, e),
      fail: (e) => this.fail(e),
    });
    this.stepCtx = { mls: mlsCtx, selfId: identity.userId, clock: this.clock };
    this.sealing = {
      identity,
      mls: mlsCtx,
      clock: this.clock,
      prefix: this.prefix,
      miner,
      accessKeys: new mls.ExporterCache(),
      onPow: (bits, seconds) => this.emit('pow', { bits, seconds }),
    };
    this.sendCtx = { ...this.stepCtx, seal: this.sealing };
    this.inbox = new InboxPipeline({
      queue: this.queue,
      check: (payload) => this.checkInbound(payload),
      receive: (opened, sender) => this.receiveInQueue(opened, sender, this.clock.now()),
      dropped: (reason, topic, error) => this.dropped(reason, topic, error),
      securityDrop: (topic, inner) => this.securityDrop(topic, inner),
      refuseIfOverloaded: (e, topic) => this.refuseIfOverloaded(e, topic),
    });
    // Attached before connecting so messages the broker redelivers at connect are covered.
    this.transport.onMessage((m) => this.onTransportMessage(m));
    this.transport.on('error', (e: Error) => this.log.warn({ err: e.message }, 'transport error'));
    this.transport.on('connect', ({ sessionPresent }) => this.onReconnected(sessionPresent));
    this.groupShell = new GroupShell(
      {
        ctx: { ...this.stepCtx, seal: this.sealing, updateEveryMessages: this.updateEvery() },
        store: this.opts.store,
        states: this.states,
        queue: this.queue,
        log: this.log,
        quota: this.quota,
        maxEnvelopeBytes: opts.maxEnvelopeBytes ?? DEFAULT_MAX_ENVELOPE_BYTES,
        transport: this.transport,
        bundles: this.bundles,
        outbox: this.outbox,
        outboxRowError: this.outboxRowError,
        events: this,
        fail: (e) => this.fail(e),
        handler: () => this.handler,
      },
      opts.groups,
    );
  }

  /** Loads the identity from the store, creating and saving one on first use. */
  static async create(opts: RelayClientOptions): Promise<RelayClient> {
    const clock = opts.clock ?? systemClock;
    let stored = await opts.store.loadIdentity();
    if (!stored) {
      const fresh = generateIdentity();
      stored = { signingSeed: fresh.signingSeed, sealSecret: fresh.sealSecret, createdAt: clock.now() };
      await opts.store.saveIdentity(stored);
    }
    const identity = identityFromSecrets(stored.signingSeed, stored.sealSecret);
    const mlsCtx = await mls.createMlsContext({ provider: opts.mlsProvider ?? 'node' });
    const opener = await createOpener(identity.sealSecret);
    const miner = new PowMiner(opts.powWorkers !== undefined ? { workers: opts.powWorkers } : {});
    return new RelayClient(opts, identity, mlsCtx, opener, miner);
  }

  get connected(): boolean {
    return this.transport.connected;
  }

  /** Connects, restores sessions, subscribes to our inbox and keys topic and publishes our bundle. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    // Access keys only: MLS states are read and decoded when a message needs them (PROTOCOL.md §10).
    for (const s of await this.opts.store.listSessionAccess()) this.indexSession(s);
    await this.groupShell.restore();
    let opened!: () => void;
    this.ready = new Promise<void>((r) => (opened = r));
    await this.transport.connect();
    // Replies committed before a crash go out before anything new is taken in (ARCHITECTURE.md).
    await this.flushOutbox();
    // Messages parked before a crash join their lanes before anything new is taken in.
    await this.parking.resume();
    opened();
    await this.transport.subscribe(inboxTopic(this.prefix, this.identity.userId), { qos: 1 });
    await this.groupShell.start();
    await this.housekeeping();
    await this.transport.subscribe(keysTopic(this.prefix, this.identity.userId), { qos: 1 });
    this.refreshTimer = setInterval(() => void this.housekeeping().catch((e) => this.fail(e)), 600_000);
    this.refreshTimer.unref();
    this.startedUp = true;
  }

  /** Finishes in-flight work, publishes what is committed, then disconnects. */
  async stop(): Promise<void> {
    this.startedUp = false;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    await this.outbox.stop();
    await this.groupShell.stop();
    await this.queue.idle();
    if (this.transport.connected) await this.flushOutbox().catch(() => undefined);
    await this.outbox.deletePublished().catch(() => undefined);
    await this.parking.stop();
    await this.transport.end();
    await this.miner.close();
    this.started = false;
  }

  /**
   * Sends text to a user, making first contact (bundle fetch, Welcome with PoW) when needed.
   * `options.data` is committed in the same transaction as the message (e.g. removing the
   * scheduled job that caused it), so a crash can neither lose the message nor send it twice.
   */
  async send(
    peer: string,
    message: string | { content: string; id?: string; replyTo?: string; type?: string },
    options: { data?: Array<{ conversationId: string; json: string }> } = {},
  ): Promise<{ id: string }> {
    const peerId = userIdFromHex(peer);
    const peerHex = userIdToHex(peerId);
    if (peerHex === this.userId) throw new ArgumentError('cannot send to our own user id');
    const content = typeof message === 'string' ? { content: message } : message;
    const id = content.id ?? randomUUID();
    // Network waits (bundle fetch, PUBACKs) stay outside the peer's lane: MQTT.js handles inbound
    // packets one at a time, so a lane waiting on the broker while an inbound message waits on the
    // lane would deadlock.
    let bundle: FetchedBundle | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      const outcome = await this.queue.run(peerHex, () =>
        retryStale(() => this.sendInQueue(peerHex, { ...content, id }, bundle, options.data ?? [])),
      );
      if (outcome !== 'need-bundle') {
        await this.flushOutbox();
        return { id };
      }
      bundle = await this.bundles.fetch(peerHex);
    }
    throw new ProtocolError(`could not establish a session with ${peerHex}`);
  }

  /**
   * Fetches, verifies and records a user's current key bundle without starting a session; throws
   * the verification error (and counts a 'bundle_invalid' drop) when the bundle is not acceptable.
   */
  async verifyPeer(peer: string): Promise<{ userId: UserIdHex; displayName?: string; powBits: number }> {
    const peerHex = userIdToHex(userIdFromHex(peer));
    const fetched = await this.bundles.fetch(peerHex);
    await this.opts.store.putPeer(fetched.record);
    return {
      userId: peerHex,
      powBits: fetched.powBits,
      ...(fetched.record.displayName !== undefined ? { displayName: fetched.record.displayName } : {}),
    };
  }

  /** The MLS group and epoch of our session with a peer, if there is one. */
  async sessionWith(peer: string): Promise<{ groupId: string; epoch: bigint } | undefined> {
    const s = await this.opts.store.getSessionByPeer(userIdToHex(userIdFromHex(peer)));
    return s && { groupId: s.groupId, epoch: s.epoch };
  }

  /**
   * Sets the one transactional message handler. It runs inside the conversation's lane before the
   * message is committed; replies it makes are committed with it and published afterwards, so a
   * crash at any point neither loses a reply nor sends one twice.
   */
  setMessageHandler(handler: TransactionalHandler | undefined): void {
    this.handler = handler;
  }

  /** Conversation data whose id starts with the prefix (a bot's scheduled jobs, for instance). */
  listConversationData(prefix: string): Promise<Array<{ conversationId: string; json: string }>> {
    return this.opts.store.listConversationData(prefix);
  }

  /** The peers we have a session with. */
  async peers(): Promise<UserIdHex[]> {
    return (await this.opts.store.listSessions()).map((s) => s.peerId as UserIdHex);
  }

  // ---------------------------------------------------------------- groups (PROTOCOL.md §9)

  /** Creates a group with us as its committer and invites `members` (their bundles must verify). */
  createGroup(members: readonly string[], options: { name?: string } = {}): Promise<GroupInfo> {
    return this.groupShell.create(members, options);
  }

  /** As committer, adds at once; otherwise proposes the Adds, which the committer commits. */
  addToGroup(groupId: string, userIds: readonly string[]): Promise<void> {
    return this.groupShell.add(groupId, userIds);
  }

  removeFromGroup(groupId: string, userIds: readonly string[]): Promise<void> {
    return this.groupShell.remove(groupId, userIds);
  }

  /** Proposes our own removal; the 'group' event {kind: 'left'} follows when it is committed. */
  leaveGroup(groupId: string): Promise<void> {
    return this.groupShell.leave(groupId);
  }

  updateGroupKeys(groupId: string): Promise<void> {
    return this.groupShell.updateKeys(groupId);
  }

  /** Posts to a group's topic. `options.data` is committed in the same transaction as the message. */
  async sendToGroup(
    groupId: string,
    message: string | { content: string; id?: string; replyTo?: string; type?: string },
    options: { data?: Array<{ conversationId: string; json: string }> } = {},
  ): Promise<{ id: string }> {
    const content = typeof message === 'string' ? { content: message } : message;
    const id = content.id ?? randomUUID();
    await this.groupShell.send(groupId, { ...content, id }, options.data ?? []);
    return { id };
  }

  group(groupId: string): Promise<GroupInfo | undefined> {
    return this.groupShell.info(groupId);
  }

  groups(): Promise<GroupInfo[]> {
    return this.groupShell.list();
  }

  // ---------------------------------------------------------------- outbound

  /** Commits each outgoing payload to the outbox with the state that produced it. */
  private async sendInQueue(
    peerHex: UserIdHex,
    content: { content: string; id: string; replyTo?: string; type?: string },
    bundle: FetchedBundle | undefined,
    data: Array<{ conversationId: string; json: string }>,
  ): Promise<'sent' | 'need-bundle'> {
    let session = await this.opts.store.getSessionByPeer(peerHex);
    if (!session) {
      if (!bundle) return 'need-bundle';
      session = await this.firstContact(peerHex, bundle);
    }
    const peer = await this.requirePeer(peerHex);
    let state = this.decodedState(session);
    const refresh = refreshBeforeSend(state, session, this.updateEvery());
    if (refresh) {
      const step = refresh === 'commit' ? directCommitPending : directProposeUpdate;
      const written = await step(this.sendCtx, session, state, peer);
      await this.commit({ sessions: [written.session], outbox: [written.row] }, written.state);
      if (refresh === 'commit') this.indexSession(written.session);
      ({ state, session } = written);
    }
    const written = await directEncrypt(this.sendCtx, session, state, peer, content);
    await this.commit(
      { sessions: [written.session], outbox: [written.row], conversationData: data },
      written.state,
    );
    return 'sent';
  }

  private updateEvery(): number {
    return this.opts.updateEveryMessages ?? 1000;
  }

  private async firstContact(peerHex: UserIdHex, peer: FetchedBundle): Promise<SessionRecord> {
    if (peer.powBits > MAX_MINED_POW_BITS) {
      throw new ProtocolError(
        `${peerHex} demands ${peer.powBits} PoW bits; we mine at most ${MAX_MINED_POW_BITS}`,
      );
    }
    const created = await mls.createOneToOne(this.mlsCtx, this.#secrets, peer.keyPackage);
    const groupId = toHex(mls.groupIdOf(created.state));
    const inner: Omit<InnerPayload, 'senderId' | 'senderIdentityKey'> = {
      msgType: MSG_TYPE.welcome,
      mls: created.welcome,
      ratchetTree: created.ratchetTree,
      sealedSenderKey: this.identity.sealPublic,
      sealedSenderKeySignature: signSealedSenderKey(this.#secrets),
    };
    const payload = await sealWithPow(this.sealing, peer.record, inner);
    const session = await newDirectSession(
      this.stepCtx,
      created.state,
      groupId,
      peerHex,
      true,
      this.clock.now(),
    );
    await this.commit(
      {
        sessions: [session],
        peers: [peer.record],
        outbox: [inboxRow(this.sealing, peer.record.userId, payload)],
      },
      created.state,
    );
    this.indexSession(session);
    this.emit('session', { peer: peerHex, groupId, role: 'initiator' });
    return session;
  }

  private async requirePeer(peerHex: string): Promise<PeerRecord> {
    const peer = await this.opts.store.getPeer(peerHex);
    if (!peer) throw new ProtocolError(`no keys known for ${peerHex}`);
    return peer;
  }

  /**
   * Commits, then advances the local copies' versions to what the store now holds, so the same
   * flow can write the session again. A stale version drops the cached state: the next attempt
   * decodes what the store really holds.
   */
  private commit(changes: InboundCommit, decoded?: mls.GroupSession): Promise<void> {
    const only = changes.sessions?.length === 1 ? changes.sessions[0] : undefined;
    return this.states.save(changes, decoded && only && { groupId: only.groupId, state: decoded });
  }

  private decodedState(session: SessionRecord): mls.GroupSession {
    return this.states.decoded(session);
  }

  /** Publishes committed outbox rows (outbox-publisher.ts). */
  flushOutbox(): Promise<void> {
    return this.outbox.flush();
  }

  private readonly outboxRowError = (row: OutboxRecord): PublishTooLargeError | undefined =>
    this.transport.publishSizeError(row.topic, row.payload.length, {
      ...(row.messageExpirySeconds !== undefined ? { messageExpirySeconds: row.messageExpirySeconds } : {}),
    });

  /** After a reconnect: publish what waited, and restore our bundle if the broker lost its state. */
  private onReconnected(sessionPresent: boolean): void {
    if (!this.startedUp) return;
    void this.outbox.readBack().catch(() => undefined);
    if (!sessionPresent) this.bundles.scheduleRepublish(true);
  }

  // ---------------------------------------------------------------- bundles

  /** Daily bundle refresh, key retention and cache expiry (PROTOCOL.md §4, §5). */
  private async housekeeping(): Promise<void> {
    await this.bundles.refresh();
    await this.opts.store.prune(this.clock.now());
    await this.expireUnusedSessions();
    await this.groupShell.housekeeping();
  }

  private async expireUnusedSessions(): Promise<void> {
    const before = (this.clock.now() - UNUSED_SESSION_SECONDS) as UnixSeconds;
    for (const groupId of await this.opts.store.deleteUnusedSessions(before)) {
      this.accessIndex.removeSession(groupId);
      this.states.forget(groupId);
    }
  }

  // ---------------------------------------------------------------- inbound

  private async onTransportMessage(m: InboundMessage): Promise<void> {
    // Before anything else: QoS 0 costs its sender nothing and is outside flow control (§3).
    if (m.qos === 0 && isQos1OnlyTopic(this.prefix, m.topic)) return this.dropped('qos', m.topic);
    await this.ready;
    return this.dispatchInbound(m);
  }

  /** One inbound message, from the broker or re-run from the parking. */
  private async dispatchInbound(m: InboundMessage): Promise<void> {
    const ownInbox = inboxTopic(this.prefix, this.identity.userId);
    const ownKeys = keysTopic(this.prefix, this.identity.userId);
    if (m.topic === ownInbox) return this.inbox.receive(m.topic, m.payload);
    if (m.topic === ownKeys) {
      this.bundles.onOwnKeysPayload(m.payload);
      return;
    }
    const parsed = parseTopic(this.prefix, m.topic);
    if (parsed?.kind === 'group') {
      const reason = await this.groupShell
        .receiveTopic(parsed.topicId, m.payload)
        .catch((e: unknown) => this.refuseIfOverloaded(e, m.topic));
      if (reason) this.dropped(reason, m.topic);
      return;
    }
    if (this.bundles.deliver(m.topic, m.payload)) return;
    if (!m.topic.endsWith('/keys')) this.dropped('unexpected_topic', m.topic);
  }

  /**
   * A full lane refuses the message, but it was not processed, so it must not be acknowledged: the
   * rejection reaches the transport, which leaves it unacknowledged and reconnects, and the broker
   * redelivers it. Counted as `overload`. (Only local sends can fill a lane: inbound QoS 1 work is
   * bounded by the receive maximum, far below the lane bounds, and QoS 0 never gets this far.)
   */
  private refuseIfOverloaded(e: unknown, topic: string): never {
    if (e instanceof QueueFullError) this.dropped('overload', topic, e);
    throw e;
  }

  private dropped(reason: DropReason, topic: string, error?: unknown): void {
    this.drops.increment(reason);
    this.log.debug(
      { reason, topic, err: error instanceof Error ? error.message : undefined },
      'dropped input',
    );
    this.emit('drop', { reason, topic });
  }

  private checkInbound(payload: Uint8Array) {
    const now = this.clock.now();
    return checkEnvelope(
      {
        selfId: this.identity.userId,
        powBits: this.powBits,
        maxEnvelopeBytes: this.opts.maxEnvelopeBytes ?? DEFAULT_MAX_ENVELOPE_BYTES,
        opener: this.opener,
        accessIndex: this.accessIndex,
        replayCache: this.replayCache,
        hasEnvelope: (d, t) => this.opts.store.hasEnvelope(d, t),
      },
      payload,
      now,
    );
  }

  private securityDrop(topic: string, inner: InnerPayload): void {
    const claimed = toHex(inner.senderId);
    this.log.warn({ claimedSender: claimed }, 'security: sender binding failed');
    this.emit('security', { kind: 'sender_binding', claimedSender: claimed });
    this.dropped('sender_binding', topic);
  }

  private async receiveInQueue(
    opened: OpenedEnvelope,
    sender: UserIdHex,
    now: UnixSeconds,
  ): Promise<DropReason | undefined> {
    return retryStale(() => {
      switch (opened.inner.msgType) {
        case MSG_TYPE.welcome:
          return this.receiveWelcome(opened, sender, now);
        case MSG_TYPE.message:
          return this.receiveMessage(opened, sender, now);
        case MSG_TYPE.groupWelcome:
          return this.groupShell.receiveWelcome(opened, sender, now);
        case MSG_TYPE.groupRejoin:
          return this.groupShell.receiveRejoin(opened, sender, now);
        default:
          return Promise.resolve('inner_payload' as const);
      }
    });
  }

  private async receiveWelcome(opened: OpenedEnvelope, sender: UserIdHex, now: UnixSeconds) {
    const { inner } = opened;
    const admitted = await admitWelcome(this.welcomeDeps(), opened, sender, now, {
      tooLarge: 'welcome_invalid',
      rejected: 'welcome rejected',
    });
    if (!admitted.ok) return admitted.reason;
    const { joined, digest: welcomeDigest, sealKey } = admitted;
    const binding = directWelcomeMembers(joined, inner, this.identity.signingPublic);
    if (binding) return binding;
    const step = await directWelcome(
      this.stepCtx,
      {
        existing: await this.opts.store.getSessionByPeer(sender),
        known: await this.opts.store.getPeer(sender),
      },
      { joined, opened, sender, digest: welcomeDigest, sealKey, now },
    );
    await this.states.save(step.commit, step.decoded);
    if (step.replaces) this.accessIndex.removeSession(step.replaces);
    if (step.session) this.indexSession(step.session);
    for (const e of step.events) this.emit('session', e);
    for (const f of step.followUps) {
      // Outside this lane: a fresh bundle (PROTOCOL.md §4), and texts re-sent through send().
      if (f.kind === 'republish') setImmediate(() => this.bundles.scheduleRepublish(false));
      else setImmediate(() => f.texts.forEach((t) => void this.send(f.peer, t).catch((e) => this.fail(e))));
    }
    return step.drop;
  }

  private welcomeDeps() {
    return { store: this.opts.store, mls: this.mlsCtx, quota: this.quota, log: this.log };
  }

  private async receiveMessage(opened: OpenedEnvelope, sender: UserIdHex, now: UnixSeconds) {
    const { inner } = opened;
    let groupIdBytes: Uint8Array;
    try {
      groupIdBytes = mls.groupIdOfMessage(inner.mls);
    } catch {
      return 'mls' as const;
    }
    const groupId = toHex(groupIdBytes);
    if (opened.tokenSession !== undefined && opened.tokenSession !== groupId) return 'access_session';
    const digest = digestHex(inner.mls);
    const loaded = await this.states.loadDirect(groupId, digest);
    if (!loaded) return 'unknown_session';
    const step = await directMessage(this.stepCtx, loaded, { inner, sender, now }, (err) =>
      this.log.debug({ err }, 'mls rejected message'),
    );
    if (step.drop) return step.drop;
    const { received, state: processedState } = step;
    // `state` is encoded once, below, from whichever MLS state is committed (after the replies).
    let next = step.next;
    const peer = loaded.peer;
    if (!peer) throw new ProtocolError(`no keys known for ${loaded.session.peerId}`);
    if (inner.sealedSenderKey) peer.sealKey = inner.sealedSenderKey;
    const replies = received ? await this.runHandler(received, processedState, next, peer) : undefined;
    const finalState = replies?.state ?? processedState;
    // The replies may have committed the peer's proposals: a new epoch, with new access keys.
    next = replies?.session ?? next;
    await this.commit(
      {
        sessions: [{ ...next, state: mls.encodeSession(finalState) }],
        ...(inner.sealedSenderKey ? { peers: [peer] } : {}),
        processed: { groupId, digest, at: now },
        envelope: replayEntry(opened),
        ...(replies
          ? { outbox: replies.outbox, conversationData: replies.conversationData, groups: replies.groups }
          : {}),
      },
      finalState,
    );
    if (replies?.groups.length) this.groupShell.carryOut(replies.groups.map((g) => g.groupId));
    // The new state is durable: only now may the keys it no longer needs be erased.
    mls.wipeConsumed(step.consumed);
    for (const c of replies?.consumed ?? []) mls.wipeConsumed(c);
    this.indexSession(next);
    if (replies?.outbox.length) void this.flushOutbox().catch((e) => this.fail(e));
    if (step.kind !== 'application') return undefined;
    // MLS accepted it: the ratchet moved on even if the application cannot read it (PROTOCOL.md §10).
    if (!received) return 'content';
    this.emit('message', received);
    return undefined;
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
    if (!this.handler) return undefined;
    const run = await runHandler(
      this.handler,
      message,
      (id) => this.opts.store.getConversationData(id),
      (e) => this.fail(e),
    );
    const replies = await directReplies(
      this.sendCtx,
      { session, state, peer },
      { replies: run.replies, answered: message.content, check: this.outboxRowError },
    );
    for (const e of replies.refused) this.fail(e);
    return {
      state: replies.state,
      consumed: replies.consumed,
      // The caller encodes `state` into the record it commits.
      session: replies.session,
      outbox: replies.outbox,
      conversationData: run.conversationData,
      groups: await this.groupShell.recordChanges(run.changes, this.clock.now()),
    };
  }

  private indexSession(s: SessionAccessRecord): void {
    this.accessIndex.setSession(s.groupId, {
      current: s.inboundAccess.current,
      ...(s.inboundAccess.previous ? { previous: s.inboundAccess.previous } : {}),
    });
  }

  private fail(e: unknown): void {
    const err = e instanceof Error ? e : new RelayError('PROTOCOL', String(e));
    this.log.error({ err: err.message }, 'relay client error');
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }
}
