/**
 * RelayClient: the thin shell that wires identity, bundles, sealing, proof of work, access tokens,
 * MLS and the MQTT transport into one end-to-end encrypted client (PROTOCOL.md §1–10). It holds the
 * timers, the lanes, the event emitter and the I/O; the 1:1 and group halves (direct-shell.ts,
 * group-shell.ts) run the protocol steps and commit. It emits only verified application messages;
 * everything else is dropped with a counted reason.
 */
import { EventEmitter } from 'eventemitter3';
import { pino, type Logger } from 'pino';
import { AccessIndex } from './access.js';
import { asPowBits, type UserIdHex } from './brand.js';
import { Bundles } from './bundles.js';
import { transportOptions, type RelayClientEvents, type RelayClientOptions } from './client-options.js';
import { systemClock, type Clock } from './clock.js';
import { encodeContent, type ContentInput } from './content.js';
import { buildShells, loadSecrets, type ClientSecrets } from './client-shells.js';
import { ConversationStates } from './conversation-states.js';
import { DirectShell, type OutgoingContent } from './direct-shell.js';
import { DropCounters } from './drops.js';
import { WorkCounters } from './work-counters.js';
import { DUTY, SOLE_OWNER, type Duties } from './duties.js';
import { ArgumentError, RelayError } from './errors.js';
import { GroupShell } from './group-shell.js';
import type { GroupInfo } from './group-types.js';
import type { TransactionalHandler } from './handler.js';
import { publicIdentity, userIdFromHex, userIdToHex, type PublicIdentity } from './identity.js';
import { InboundRouter } from './inbound-router.js';
import { KeyedSerialQueue } from './keyed-queue.js';
import { DEFAULT_MAX_ENVELOPE_BYTES, DEFAULT_POW_BITS } from './labels.js';
import { OutboxPublisher } from './outbox-publisher.js';
import { withOutboxCheck } from './outbox-quarantine.js';
import { Parking } from './parking.js';
import { PowMiner } from './pow.js';
import type { Profile } from './profile.js';
import { systemRandom, type Random } from './random.js';
import { accessReload, ReplicaWiring } from './replica-wiring.js';
import type { OutboxRecord, RelayStore } from './store.js';
import { DEFAULT_TOPIC_PREFIX, inboxTopic, keysTopic } from './topics.js';
import { MqttTransport } from './transport.js';
import type { PublishTooLargeError } from './transport-packet-size.js';
import { WelcomeQuota, DEFAULT_WELCOME_QUOTA } from './welcome-quota.js';

export type { GroupChange, HandlerTransaction } from './group-types.js';
export type { DirectReceivedMessage, ReceivedMessage, ReplyFn, TransactionalHandler } from './handler.js';

export type { SessionEvent } from './steps/direct-welcome.js';

export type {
  BrokerOptions,
  RelayClientEvents,
  RelayClientOptions,
  ReplicaOptions,
} from './client-options.js';

/** An end-to-end encrypted Relay client: 1:1 sessions and groups over MQTT 5, emitting only verified messages. */
export class RelayClient extends EventEmitter<RelayClientEvents> {
  readonly drops = new DropCounters();
  /** State-cache outcomes, lost save races and access reloads (work-counters.ts), for metrics. */
  readonly work = new WorkCounters();
  readonly userId: UserIdHex;
  /** User id and public keys; the secrets stay with the sealing context, out of reach of the public API. */
  readonly identity: PublicIdentity;
  private readonly prefix: string;
  private readonly miner: PowMiner;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly log: Logger;
  private readonly queue = new KeyedSerialQueue();
  private readonly transport: MqttTransport;
  private readonly parking: Parking;
  private readonly outbox: OutboxPublisher;
  private readonly bundles: Bundles;
  private readonly router: InboundRouter;
  private readonly direct: DirectShell;
  private readonly groupShell: GroupShell;
  private readonly store: RelayStore;
  private readonly duties: Duties;
  /** The replica duties and timers (replica-wiring.ts); undefined for a single process. */
  private readonly replica: ReplicaWiring | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private handler: TransactionalHandler | undefined;
  /** Inbound messages wait on this until start-up has flushed the outbox and resumed the parking. */
  private ready: Promise<void> = Promise.resolve();
  /** start() has run to its end (stop() clears it first): reconnects republish and flush. */
  private startedUp = false;
  /** start() was called and stop() has not finished: failed publishing may be retried. */
  private started = false;

  private constructor(opts: RelayClientOptions, { identity, mls: mlsCtx, opener, miner }: ClientSecrets) {
    super();
    this.miner = miner;
    this.identity = publicIdentity(identity);
    this.userId = userIdToHex(identity.userId);
    this.prefix = opts.topicPrefix ?? DEFAULT_TOPIC_PREFIX;
    const powBits = asPowBits(opts.powBits ?? DEFAULT_POW_BITS);
    const accessIndex = new AccessIndex();
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? systemRandom;
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.duties = opts.duties ?? SOLE_OWNER;
    const maxEnvelopeBytes = opts.maxEnvelopeBytes ?? DEFAULT_MAX_ENVELOPE_BYTES;
    const quota = new WelcomeQuota(this.clock, opts.welcomeQuota ?? DEFAULT_WELCOME_QUOTA);
    this.parking = new Parking({
      store: opts.store,
      clock: this.clock,
      random: this.random,
      log: this.log,
      process: (m) => this.router.dispatch(m),
      ...(opts.parkAfterMs !== undefined ? { stallMs: opts.parkAfterMs } : {}),
    });
    this.transport = new MqttTransport({
      ...transportOptions(opts.broker, this.userId, maxEnvelopeBytes),
      parking: this.parking,
    });
    this.outbox = new OutboxPublisher({
      store: opts.store,
      publish: (topic, payload, o) => this.transport.publish(topic, payload, o),
      clock: this.clock,
      log: this.log,
      onQuarantine: (q) => this.emit('quarantine', q),
      retryAllowed: () => this.started,
      ...(opts.replica ? { replica: opts.replica.replicaId } : {}),
    });
    // Every commit goes through the publisher, which keeps its rows in hand (outbox-in-hand.ts).
    this.store = withOutboxCheck(this.outbox.handingRowsOver(opts.store), this.outboxRowError);
    this.bundles = new Bundles({
      identity,
      store: this.store,
      mls: mlsCtx,
      clock: this.clock,
      prefix: this.prefix,
      powBits,
      ...(opts.displayName !== undefined ? { displayName: opts.displayName } : {}),
      ...(opts.profile !== undefined ? { profile: opts.profile } : {}),
      ...(opts.bundleFetchTimeoutMs !== undefined ? { fetchTimeoutMs: opts.bundleFetchTimeoutMs } : {}),
      publish: (topic, payload, o) => this.transport.publish(topic, payload, o),
      subscribe: (topic, o) => this.transport.subscribe(topic, o),
      unsubscribe: (topic) => this.transport.unsubscribe(topic),
      onInvalid: (topic, e) => this.router.dropped('bundle_invalid', topic, e),
      fail: (e) => this.fail(e),
      owns: () => this.duties.owns(DUTY.bundle),
    });
    ({ direct: this.direct, groups: this.groupShell } = buildShells({
      identity,
      mls: mlsCtx,
      clock: this.clock,
      random: this.random,
      prefix: this.prefix,
      miner,
      store: this.store,
      states: new ConversationStates(this.store, this.work),
      queue: this.queue,
      log: this.log,
      quota,
      bundles: this.bundles,
      outbox: this.outbox,
      outboxRowError: this.outboxRowError,
      accessIndex,
      transport: this.transport,
      maxEnvelopeBytes,
      updateEveryMessages: opts.updateEveryMessages ?? 1000,
      groupOptions: opts.groups,
      events: this,
      onPow: (bits, seconds) => this.emit('pow', { bits, seconds }),
      fail: (e) => this.fail(e),
      handler: () => this.handler,
    }));
    this.router = new InboundRouter({
      prefix: this.prefix,
      selfId: identity.userId,
      powBits,
      maxEnvelopeBytes,
      opener,
      accessIndex,
      store: this.store,
      clock: this.clock,
      queue: this.queue,
      log: this.log,
      drops: this.drops,
      bundles: this.bundles,
      direct: this.direct,
      groups: this.groupShell,
      events: this,
      ready: () => this.ready,
      // Only replicas need it: a single process knows every session and epoch it set up.
      ...(opts.broker.shareGroup !== undefined ? { reloadAccess: accessReload(this.direct, this.work) } : {}),
    });
    // Attached before connecting so messages the broker redelivers at connect are covered.
    this.transport.onMessage((m) => this.router.onTransportMessage(m));
    this.transport.on('error', (e: Error) => this.log.warn({ err: e.message }, 'transport error'));
    this.transport.on('connect', ({ sessionPresent }) => this.onReconnected(sessionPresent));
    this.replica =
      opts.replica &&
      new ReplicaWiring({
        replica: opts.replica,
        broker: opts.broker,
        userId: this.userId,
        maxEnvelopeBytes,
        duties: this.duties,
        store: opts.store,
        outbox: this.outbox,
        transport: this.transport,
        bundles: this.bundles,
        groups: this.groupShell,
        receive: (m, via) => this.router.onTransportMessage(m, via),
        fail: (e) => this.fail(e),
        log: this.log,
      });
    this.duties.on?.('acquired', (name) => this.onDutyAcquired(name));
  }

  /** Loads the identity from the store, creating and saving one on first use. */
  static async create(opts: RelayClientOptions): Promise<RelayClient> {
    return new RelayClient(opts, await loadSecrets(opts));
  }

  get connected(): boolean {
    return this.transport.connected;
  }

  /** Connects, restores sessions, subscribes to our inbox and keys topic and publishes our bundle. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.router.start();
    // Access keys only: MLS states are read and decoded when a message needs them (PROTOCOL.md §10).
    await this.direct.restore();
    await this.groupShell.restore();
    let opened!: () => void;
    this.ready = new Promise<void>((r) => (opened = r));
    // A replica connects only with the right to its client id (session-claim.ts).
    await this.replica?.beforeConnect();
    await this.transport.connect();
    // Replies committed before a crash go out before anything new is taken in (ARCHITECTURE.md).
    await this.flushOutbox();
    // Messages parked before a crash join their lanes before anything new is taken in.
    await this.parking.resume();
    opened();
    await this.transport.subscribe(inboxTopic(this.prefix, this.identity.userId), { qos: 1, shared: true });
    await this.groupShell.start();
    await this.housekeeping();
    await this.transport.subscribe(keysTopic(this.prefix, this.identity.userId), { qos: 1 });
    this.refreshTimer = setInterval(() => void this.housekeeping().catch((e) => this.fail(e)), 600_000);
    this.refreshTimer.unref();
    this.replica?.start();
    this.startedUp = true;
  }

  /** Finishes in-flight work, publishes what is committed, then disconnects. */
  async stop(): Promise<void> {
    this.startedUp = false;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    await this.replica?.stop();
    await this.outbox.stop();
    await this.groupShell.stop();
    this.router.stop();
    await this.queue.idle();
    // What follows the last commits (publishing, events) runs while the broker is still there.
    await Promise.all([this.direct.settled(), this.groupShell.settled()]);
    if (this.transport.connected) await this.flushOutbox().catch(() => undefined);
    await this.outbox.deletePublished().catch(() => undefined);
    await this.parking.stop();
    await this.transport.end();
    await this.miner.close();
    this.started = false;
  }

  /**
   * Sends a message of any §8 content type (a string is a text) to a user, making first contact
   * (bundle fetch, Welcome with PoW) when needed. Like every application message it advances the
   * ratchet, so it is committed with the new state before it is published, `typing` included.
   * Content §8 does not allow throws ArgumentError before anything is written.
   * `options.data` is committed in the same transaction as the message (e.g. removing the
   * scheduled job that caused it), so a crash can neither lose the message nor send it twice.
   */
  async send(
    peer: string,
    message: string | ContentInput,
    options: { data?: Array<{ conversationId: string; json: string }> } = {},
  ): Promise<{ id: string }> {
    const peerHex = userIdToHex(userIdFromHex(peer));
    if (peerHex === this.userId) throw new ArgumentError('cannot send to our own user id');
    const content = this.outgoing(message);
    await this.direct.send(peerHex, content, options.data ?? []);
    return { id: content.id };
  }

  /**
   * Fetches, verifies and records a user's current key bundle without starting a session; throws
   * the verification error (and counts a 'bundle_invalid' drop) when the bundle is not acceptable.
   */
  async verifyPeer(
    peer: string,
  ): Promise<{ userId: UserIdHex; displayName?: string; powBits: number; profile?: Profile }> {
    const peerHex = userIdToHex(userIdFromHex(peer));
    const fetched = await this.bundles.fetch(peerHex);
    await this.store.putPeer(fetched.record);
    return {
      userId: peerHex,
      powBits: fetched.powBits,
      ...(fetched.record.displayName !== undefined ? { displayName: fetched.record.displayName } : {}),
      ...(fetched.profile !== undefined ? { profile: fetched.profile } : {}),
    };
  }

  /** The MLS group and epoch of our session with a peer, if there is one. */
  async sessionWith(peer: string): Promise<{ groupId: string; epoch: bigint } | undefined> {
    const s = await this.store.getSessionByPeer(userIdToHex(userIdFromHex(peer)));
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
    return this.store.listConversationData(prefix);
  }

  /** The peers we have a session with. */
  async peers(): Promise<UserIdHex[]> {
    return (await this.store.listSessions()).map((s) => s.peerId as UserIdHex);
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

  /**
   * Posts a message of any §8 content type to a group's topic. `options.data` is committed in the
   * same transaction as the message.
   */
  async sendToGroup(
    groupId: string,
    message: string | ContentInput,
    options: { data?: Array<{ conversationId: string; json: string }> } = {},
  ): Promise<{ id: string }> {
    const content = this.outgoing(message);
    await this.groupShell.send(groupId, content, options.data ?? []);
    return { id: content.id };
  }

  /**
   * The content to send, with a fresh id when it has none, checked against §8 before any lane or
   * store is touched: an ArgumentError names the field to fix.
   */
  private outgoing(message: string | ContentInput): OutgoingContent {
    const content: ContentInput = typeof message === 'string' ? { content: message } : message;
    const withId = { ...content, id: content.id ?? this.random.uuid() } as OutgoingContent;
    encodeContent(withId);
    return withId;
  }

  group(groupId: string): Promise<GroupInfo | undefined> {
    return this.groupShell.info(groupId);
  }

  groups(): Promise<GroupInfo[]> {
    return this.groupShell.list();
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

  /**
   * This replica just took over a duty: act on it now rather than on the next timer. Until start()
   * finished, start-up itself does both.
   */
  private onDutyAcquired(name: string): void {
    if (!this.startedUp) return;
    // Ours now: published again as we would mint it (a new release's metadata goes out here).
    if (name === DUTY.bundle) this.bundles.scheduleRepublish(true);
    this.replica?.onDutyAcquired(name);
    // The previous owner may have died with group work on its timers (group-outbound.ts).
    if (name === DUTY.housekeeping) void this.housekeeping().catch((e) => this.fail(e));
  }

  /** Daily bundle refresh, key retention and cache expiry (PROTOCOL.md §4, §5). */
  private async housekeeping(): Promise<void> {
    // One replica of an identity does each; the others would race it to a new bundle.
    await this.bundles.refresh();
    if (!this.duties.owns(DUTY.housekeeping)) return;
    await this.store.prune(this.clock.now());
    await this.direct.expireUnused();
    await this.groupShell.housekeeping();
  }

  private fail(e: unknown): void {
    const err = e instanceof Error ? e : new RelayError('PROTOCOL', String(e));
    this.log.error({ err: err.message }, 'relay client error');
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }
}
