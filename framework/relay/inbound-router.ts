/**
 * Where an inbound MQTT message goes (ARCHITECTURE.md "One inbound message", steps 1–4): our inbox
 * (envelope checks, then the sender's lane, then the 1:1 or group half of the shell by inner type),
 * our keys topic, a group topic, or a bundle fetch waiting on a keys topic. Whatever is refused is
 * a drop: counted, logged at debug and emitted, never thrown (a full lane aside, which must not be
 * acknowledged).
 */
import type { Logger } from 'pino';
import type { AccessIndex } from './access.js';
import type { PowBits, UnixSeconds, UserId, UserIdHex } from './brand.js';
import { toHex } from './bytes.js';
import type { Clock } from './clock.js';
import type { DropCounters, DropReason } from './drops.js';
import type { InnerPayload } from './envelope.js';
import { checkEnvelope, type OpenedEnvelope } from './inbound-envelope.js';
import { InboxPipeline } from './inbound.js';
import { QueueFullError, type KeyedSerialQueue } from './keyed-queue.js';
import { MSG_TYPE } from './labels.js';
import { LaneRetry } from './lane-retry.js';
import { ReplayCache } from './replay-cache.js';
import { retryStale } from './retry-stale.js';
import type { Opener } from './seal.js';
import type { RelayStore } from './store.js';
import { inboxTopic, isQos1OnlyTopic, keysTopic, parseTopic } from './topics.js';
import type { InboundMessage } from './transport.js';

/** A half of the shell that takes opened inbox envelopes in the sender's lane. */
interface InboxReceiver {
  receiveWelcome(
    opened: OpenedEnvelope,
    sender: UserIdHex,
    now: UnixSeconds,
  ): Promise<DropReason | undefined>;
}

/** The client's parts an inbound message may reach, and the checks' keys and limits. */
export interface InboundRouterDeps {
  prefix: string;
  selfId: UserId;
  powBits: PowBits;
  maxEnvelopeBytes: number;
  opener: Opener;
  accessIndex: AccessIndex;
  store: Pick<RelayStore, 'hasEnvelope'>;
  clock: Clock;
  queue: KeyedSerialQueue;
  log: Logger;
  drops: DropCounters;
  bundles: {
    onOwnKeysPayload(payload: Uint8Array): void;
    deliver(topic: string, payload: Uint8Array): boolean;
  };
  direct: InboxReceiver & {
    receiveMessage(
      opened: OpenedEnvelope,
      sender: UserIdHex,
      now: UnixSeconds,
    ): Promise<DropReason | undefined>;
  };
  groups: InboxReceiver & {
    receiveRejoin(
      opened: OpenedEnvelope,
      sender: UserIdHex,
      now: UnixSeconds,
    ): Promise<DropReason | undefined>;
    receiveTopic(topicId: string, payload: Uint8Array): Promise<DropReason | undefined>;
  };
  /** The client's emitter, for 'drop' and 'security' events. */
  events: {
    emit(event: 'drop', d: { reason: DropReason; topic: string }): unknown;
    emit(event: 'security', e: { kind: 'sender_binding'; claimedSender: string }): unknown;
  };
  /** Resolves once start-up let inbound messages in (after the outbox flush and the parked ones). */
  ready(): Promise<void>;
  /** With replicas: reloads the access index from the store (access-refresh.ts). */
  reloadAccess?(hint?: string): Promise<boolean>;
}

/** Routes each inbound message to the part of the client it is for; the owner of the replay cache. */
export class InboundRouter {
  private readonly replayCache = new ReplayCache();
  private readonly inbox: InboxPipeline;
  /** False outside start()..stop(): a failed message is then not retried in its lane. */
  private running = false;
  /** Retries of an inbox message that failed, held in its sender's lane (lane-retry.ts). */
  private readonly laneRetry: LaneRetry;
  /** Own inbox and keys topics, built once: dispatch compares every message's topic with them. */
  private readonly ownInbox: string;
  private readonly ownKeys: string;

  constructor(private readonly deps: InboundRouterDeps) {
    this.ownInbox = inboxTopic(deps.prefix, deps.selfId);
    this.ownKeys = keysTopic(deps.prefix, deps.selfId);
    this.laneRetry = new LaneRetry(deps.log.child({ lane: 'sender' }), () => this.running);
    this.inbox = new InboxPipeline({
      queue: deps.queue,
      check: (payload) => this.checkInbound(payload),
      receive: (opened, sender) => this.receiveInLane(opened, sender, deps.clock.now()),
      dropped: (reason, topic, error) => this.dropped(reason, topic, error),
      securityDrop: (topic, inner) => this.securityDrop(topic, inner),
      refuseIfOverloaded: (e, topic) => this.refuseIfOverloaded(e, topic),
      ...(deps.reloadAccess ? { reloadAccess: deps.reloadAccess } : {}),
    });
  }

  /** Before the first message in: failed inbox messages are retried in their lanes from now on. */
  start(): void {
    this.running = true;
  }

  /** Ends the retries waiting in the lanes at once (their messages go back to the transport). */
  stop(): void {
    this.running = false;
    this.laneRetry.wakeAll();
  }

  /** A message from the transport. */
  async onTransportMessage(m: InboundMessage): Promise<void> {
    // Before anything else: QoS 0 costs its sender nothing and is outside flow control (§3).
    if (m.qos === 0 && isQos1OnlyTopic(this.deps.prefix, m.topic)) return this.dropped('qos', m.topic);
    await this.deps.ready();
    return this.dispatch(m);
  }

  /** One inbound message, from the broker or re-run from the parking. */
  async dispatch(m: InboundMessage): Promise<void> {
    const { prefix, bundles, groups } = this.deps;
    if (m.topic === this.ownInbox) return this.inbox.receive(m.topic, m.payload);
    if (m.topic === this.ownKeys) return bundles.onOwnKeysPayload(m.payload);
    const parsed = parseTopic(prefix, m.topic);
    if (parsed?.kind === 'group') {
      const reason = await groups
        .receiveTopic(parsed.topicId, m.payload)
        .catch((e: unknown) => this.refuseIfOverloaded(e, m.topic));
      if (reason) this.dropped(reason, m.topic);
      return;
    }
    if (bundles.deliver(m.topic, m.payload)) return;
    if (!m.topic.endsWith('/keys')) this.dropped('unexpected_topic', m.topic);
  }

  /** Counts, logs (debug) and emits a dropped input. */
  dropped(reason: DropReason, topic: string, error?: unknown): void {
    this.deps.drops.increment(reason);
    this.deps.log.debug(
      { reason, topic, err: error instanceof Error ? error.message : undefined },
      'dropped input',
    );
    this.deps.events.emit('drop', { reason, topic });
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

  private checkInbound(payload: Uint8Array) {
    const d = this.deps;
    return checkEnvelope(
      {
        selfId: d.selfId,
        powBits: d.powBits,
        maxEnvelopeBytes: d.maxEnvelopeBytes,
        opener: d.opener,
        accessIndex: d.accessIndex,
        replayCache: this.replayCache,
        hasEnvelope: (digest, t) => d.store.hasEnvelope(digest, t),
      },
      payload,
      d.clock.now(),
    );
  }

  private securityDrop(topic: string, inner: InnerPayload): void {
    const claimed = toHex(inner.senderId);
    this.deps.log.warn({ claimedSender: claimed }, 'security: sender binding failed');
    this.deps.events.emit('security', { kind: 'sender_binding', claimedSender: claimed });
    this.dropped('sender_binding', topic);
  }

  /** An opened inbox envelope, in its sender's lane, to the half of the shell its type belongs to. */
  private receiveInLane(
    opened: OpenedEnvelope,
    sender: UserIdHex,
    now: UnixSeconds,
  ): Promise<DropReason | undefined> {
    const { direct, groups } = this.deps;
    // A failure that is not a drop is retried in the lane, so the sender's later messages wait.
    // retryStale inside: a StaleStateError is redone at once and never reaches the lane retry.
    return this.laneRetry.run(() =>
      retryStale(() => {
        switch (opened.inner.msgType) {
          case MSG_TYPE.welcome:
            return direct.receiveWelcome(opened, sender, now);
          case MSG_TYPE.message:
            return direct.receiveMessage(opened, sender, now);
          case MSG_TYPE.groupWelcome:
            return groups.receiveWelcome(opened, sender, now);
          case MSG_TYPE.groupRejoin:
            return groups.receiveRejoin(opened, sender, now);
          default:
            return Promise.resolve('inner_payload' as const);
        }
      }),
    );
  }
}
