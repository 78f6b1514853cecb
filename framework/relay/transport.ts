/**
 * MQTT 5 transport: moves bytes on topics and knows nothing of Relay message formats.
 *
 * Guarantees the layers above build on:
 * - a persistent session (clean start off, session expiry, default 7 days);
 * - an inbound QoS 1 message is acknowledged only after its handler resolved; a rejected handler
 *   drops the connection so the broker redelivers (MQTT 5 forbids resending on the same connection);
 * - handlers run concurrently (up to `receiveMaximum` in flight); PUBACKs still leave in arrival order;
 *   with a `parking`, a message whose slow handler holds later PUBACKs back is kept durably by it and
 *   acknowledged before its handler finishes, so one slow conversation does not stall the others;
 * - subscriptions are restored by this class whenever the broker reports it lost the session;
 * - with a `shareGroup`, subscriptions made `shared` are MQTT 5 shared subscriptions, so several
 *   processes of one identity split its messages (ARCHITECTURE.md "One identity, many processes");
 * - TCP_NODELAY on every connection (Nagle costs ~88 ms per QoS 1 request/reply on loopback).
 */
import { EventEmitter } from 'eventemitter3';
import { connect as mqttConnect, type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import { ArgumentError, TransportError } from './errors.js';
import { disableNagle, streamClosed } from './transport-socket.js';
import { ReconnectGate } from './transport-reconnect-gate.js';
import { assertDeferredPubackSupported, InboundDelivery } from './transport-inbound.js';
import { publishPacketSize, PublishTooLargeError } from './transport-packet-size.js';
import {
  SharedSubscriptionsUnsupportedError,
  subscribeError,
  SubscriptionTable,
  validateShareGroup,
} from './transport-subscriptions.js';
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_RECEIVE_MAXIMUM,
  DEFAULT_SESSION_EXPIRY_SECONDS,
  type MessageHandler,
  type MqttTransportOptions,
  type PublishOptions,
  type SubscribeOptions,
  type TransportEvents,
} from './transport-types.js';

export {
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_SESSION_EXPIRY_SECONDS,
  type InboundMessage,
  type InboundProperties,
  type MessageHandler,
  type MqttTransportOptions,
  type PublishOptions,
  type SubscribeOptions,
  type TransportEvents,
  type TransportQos,
  type TransportTlsOptions,
} from './transport-types.js';

const DEFAULT_KEEPALIVE_SECONDS = 30;
const DEFAULT_RECONNECT_PERIOD_MS = 1000;
const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
const MAX_MESSAGE_EXPIRY_SECONDS = 0xffff_ffff;
/** MQTT 5 DISCONNECT reason code "Session taken over" (§3.14.2.1). */
export const SESSION_TAKEN_OVER = 0x8e;

/**
 * An MQTT 5 client that moves bytes on topics and knows nothing of Relay formats: persistent session,
 * a QoS 1 message acknowledged only once its handler resolved, subscriptions restored after a lost
 * session. RelayClient's transport; usable on its own.
 */
export class MqttTransport extends EventEmitter<TransportEvents> {
  private readonly options: Required<
    Omit<MqttTransportOptions, 'username' | 'password' | 'tls' | 'parking' | 'shareGroup'>
  > &
    Pick<MqttTransportOptions, 'username' | 'password' | 'tls' | 'parking' | 'shareGroup'>;
  private client: MqttClient | undefined;
  private handler: MessageHandler | undefined;
  /** Subscriptions the broker confirmed; replayed when it reports a lost session. */
  private readonly subscriptions: SubscriptionTable;
  private readonly inbound: InboundDelivery;
  private serverMaxPacketSize: number | undefined;
  private readonly pendingOperations = new Set<(error: TransportError) => void>();
  /** Rejects connect() while its first attempt is under way. */
  private failFirstConnect: ((error: TransportError) => void) | undefined;
  private ending = false;
  /** Settles once the client is closed for good: no socket, no MQTT.js timer left. */
  private closed: Promise<void> | undefined;
  /** With setConnectGate: reconnects wait for the gate (transport-reconnect-gate.ts). */
  private gate: ReconnectGate | undefined;
  /**
   * The session may have been used by another connection since our last CONNACK (taken over, or
   * the gate was closed): the next CONNACK replays our subscriptions even when a session is present,
   * since a drain unsubscribes the shared filters of the session it took (slot-sessions.ts).
   */
  private replayNext = false;

  constructor(options: MqttTransportOptions) {
    super();
    if (!options.clientId) throw new ArgumentError('clientId is required');
    const receiveMaximum = options.receiveMaximum ?? DEFAULT_RECEIVE_MAXIMUM;
    if (!Number.isInteger(receiveMaximum) || receiveMaximum < 1 || receiveMaximum > 65_535) {
      throw new ArgumentError('receiveMaximum must be an integer in 1..65535');
    }
    const shareGroup = options.shareGroup === undefined ? undefined : validateShareGroup(options.shareGroup);
    this.options = {
      url: options.url,
      clientId: options.clientId,
      username: options.username,
      password: options.password,
      tls: options.tls,
      sessionExpirySeconds: options.sessionExpirySeconds ?? DEFAULT_SESSION_EXPIRY_SECONDS,
      keepaliveSeconds: options.keepaliveSeconds ?? DEFAULT_KEEPALIVE_SECONDS,
      reconnectPeriodMs: options.reconnectPeriodMs ?? DEFAULT_RECONNECT_PERIOD_MS,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      maxPayloadBytes: options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
      receiveMaximum,
      parking: options.parking,
      shareGroup,
    };
    this.subscriptions = new SubscriptionTable(shareGroup);
    this.inbound = new InboundDelivery({
      handler: () => this.handler,
      parking: options.parking,
      receiveMaximum,
      ending: () => this.ending,
      error: (error) => this.emit('error', error),
    });
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** The single inbound handler. Register it before connect(): the broker redelivers right after CONNACK. */
  onMessage(handler: MessageHandler): void {
    if (this.handler) throw new ArgumentError('a message handler is already registered');
    if (this.client) throw new ArgumentError('register the message handler before connect()');
    this.handler = handler;
  }

  /**
   * Makes every reconnect wait until `mayConnect()` answers true: a replica's claim on its client
   * id (session-claim.ts), so it never takes its session back from a drain that holds the claim.
   * Checked every reconnectPeriodMs while disconnected; reconnectNow() checks at once. Call before
   * connect(); connect() itself is not gated (the caller holds the claim before it connects).
   */
  setConnectGate(mayConnect: () => boolean): void {
    if (this.client) throw new ArgumentError('set the connect gate before connect()');
    this.gate = new ReconnectGate({
      mayConnect,
      periodMs: this.options.reconnectPeriodMs,
      client: () => this.client,
      ending: () => this.ending,
      closedSeen: () => (this.replayNext = true),
    });
  }

  /**
   * With a connect gate: reconnects now if disconnected, no attempt is under way and the gate is
   * open. With `silentSince` (performance.now() when the gate was shut), a connection that looks up
   * but received nothing since then is dropped and made again: the broker may have closed it for
   * another connection with our client id while the link was down (transport-reconnect-gate.ts).
   * True when it was dropped.
   */
  reconnectNow(silentSince?: number): boolean {
    return this.gate?.reconnectNow(silentSince) ?? false;
  }

  /**
   * Opens the connection. Rejects (and stops) if the first attempt fails, or if a `shareGroup` is
   * set and the broker has no shared subscriptions; after the first success, lost connections are
   * re-established automatically every `reconnectPeriodMs`.
   */
  connect(): Promise<{ sessionPresent: boolean }> {
    if (this.client) return Promise.reject(new ArgumentError('connect() may be called once'));
    const o = this.options;
    const mqttOptions: IClientOptions = {
      ...o.tls,
      clientId: o.clientId,
      username: o.username,
      password: o.password,
      protocolVersion: 5,
      clean: false,
      keepalive: o.keepaliveSeconds,
      // With a gate, the ReconnectGate reconnects instead of MQTT.js.
      reconnectPeriod: this.gate ? 0 : o.reconnectPeriodMs,
      connectTimeout: o.connectTimeoutMs,
      // MQTT.js replays only the subscriptions it recorded itself and filters a SUBSCRIBE for a
      // topic it believes active; both would fight the replay below, which also covers the case
      // where the broker dropped the session between two runs of this process.
      resubscribe: false,
      manualConnect: true,
      properties: {
        sessionExpiryInterval: o.sessionExpirySeconds,
        receiveMaximum: o.receiveMaximum,
      },
    };
    const client = mqttConnect(o.url, mqttOptions);
    this.client = client;
    assertDeferredPubackSupported(client);
    client.handleMessage = (packet, callback) => this.inbound.handle(client, packet, callback);

    // Every connection, first or reconnect, starts by writing CONNECT on a fresh socket.
    client.on('packetsend', (packet) => {
      if (packet.cmd === 'connect') disableNagle(client.stream);
    });
    client.on('connect', (connack) => void this.onConnack(client, connack));
    if (this.gate) {
      const gate = this.gate;
      client.on('packetreceive', () => gate.heard());
    }
    client.on('offline', () => this.emit('offline'));
    client.on('reconnect', () => this.emit('reconnect'));
    client.on('close', () => {
      if (this.gate?.wasConnected) this.emit('offline');
      this.emit('close');
      this.gate?.closed();
    });
    // MQTT 5 server DISCONNECT: 0x8E is "session taken over" (another connection with our client id).
    client.on('disconnect', (packet) => {
      const reasonCode = packet.reasonCode ?? 0;
      if (reasonCode === SESSION_TAKEN_OVER) this.replayNext = true;
      this.emit('disconnect', { reasonCode });
    });

    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (error: TransportError): void => {
        if (settled) return;
        settled = true;
        this.failFirstConnect = undefined;
        this.off('connect', onFirstConnect);
        this.pendingOperations.delete(fail);
        reject(error);
      };
      const onFirstConnect = (info: { sessionPresent: boolean }): void => {
        if (settled) return;
        settled = true;
        this.failFirstConnect = undefined;
        this.pendingOperations.delete(fail);
        resolve(info);
      };
      this.once('connect', onFirstConnect);
      // end() while the first attempt is still under way rejects it.
      this.pendingOperations.add(fail);
      // Rejects only once the client is fully stopped, so a failed connect() leaves nothing behind.
      this.failFirstConnect = (error) => {
        this.ending = true;
        void this.close(client, true).then(() => fail(error));
      };
      client.on('error', (cause) => {
        const error = new TransportError(`MQTT: ${cause.message}`, { cause });
        if (!settled) return this.failFirstConnect?.(error);
        this.emit('error', error);
      });
      client.connect();
    });
  }

  /**
   * Resolves when the broker acknowledged (QoS 1) or the packet was written (QoS 0). While offline
   * the message waits in MQTT.js's session store and is sent after reconnecting.
   */
  async publish(topic: string, payload: Uint8Array, opts: PublishOptions = {}): Promise<void> {
    const client = this.requireClient();
    const qos = opts.qos ?? 1;
    if (qos !== 0 && qos !== 1) throw new ArgumentError('qos must be 0 or 1');
    if (topic.length === 0 || topic.includes('+') || topic.includes('#')) {
      throw new ArgumentError(`invalid publish topic ${JSON.stringify(topic)}`);
    }
    const expiry = opts.messageExpirySeconds;
    if (
      expiry !== undefined &&
      (!Number.isInteger(expiry) || expiry < 1 || expiry > MAX_MESSAGE_EXPIRY_SECONDS)
    ) {
      throw new ArgumentError('messageExpirySeconds must be an integer in 1..2^32-1');
    }
    const tooLarge = this.publishSizeError(topic, payload.length, { qos, messageExpirySeconds: expiry });
    if (tooLarge) throw tooLarge;
    const body = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    await this.untilEnd(
      client.publishAsync(topic, body, {
        qos,
        retain: opts.retain ?? false,
        ...(expiry !== undefined ? { properties: { messageExpiryInterval: expiry } } : {}),
      }),
      `publish to ${topic}`,
    );
  }

  /**
   * Why a publish of this size could never be sent (our maxPayloadBytes, or the Maximum Packet Size
   * of the broker's last CONNACK), or undefined. Lets callers refuse it before committing anything.
   */
  publishSizeError(
    topic: string,
    payloadBytes: number,
    opts: Pick<PublishOptions, 'qos' | 'messageExpirySeconds'> = {},
  ): PublishTooLargeError | undefined {
    if (payloadBytes > this.options.maxPayloadBytes) {
      return new PublishTooLargeError(
        `payload of ${payloadBytes} bytes exceeds maxPayloadBytes ${this.options.maxPayloadBytes}`,
      );
    }
    const expiry = opts.messageExpirySeconds !== undefined;
    const size = publishPacketSize(Buffer.byteLength(topic), payloadBytes, opts.qos ?? 1, expiry);
    if (this.serverMaxPacketSize !== undefined && size > this.serverMaxPacketSize) {
      return new PublishTooLargeError(
        `PUBLISH of ${size} bytes exceeds the broker's Maximum Packet Size ${this.serverMaxPacketSize}`,
      );
    }
    return undefined;
  }

  /**
   * Subscribes to `topics` (through the share group when `opts.shared` and the transport has one).
   * Messages arrive with the topic they were published on, never the `$share/` filter.
   */
  async subscribe(topics: string | string[], opts: SubscribeOptions): Promise<void> {
    const client = this.requireClient();
    const list = Array.isArray(topics) ? topics : [topics];
    if (list.length === 0) return;
    if (opts.qos !== 0 && opts.qos !== 1) throw new ArgumentError('qos must be 0 or 1');
    const map = this.subscriptions.request(list, opts);
    const what = `subscribe to ${Object.keys(map).join(', ')}`;
    await this.untilEnd(client.subscribeAsync(map), what, (cause) => subscribeError(cause, what));
    this.subscriptions.confirm(list, opts);
  }

  /** Unsubscribes from a topic subscribed to before (its shared filter, if it was made shared). */
  async unsubscribe(topic: string): Promise<void> {
    const client = this.requireClient();
    const filter = this.subscriptions.forget(topic);
    await this.untilEnd(client.unsubscribeAsync(filter), `unsubscribe from ${filter}`);
  }

  /** The filters of the confirmed shared subscriptions (`$share/<group>/<topic>`). */
  sharedFilters(): string[] {
    return this.subscriptions.sharedFilters();
  }

  /**
   * Unsubscribes every shared subscription (share group members only), so the broker stops handing
   * this session a share of the messages at once (a replica stopping for good). Returns the topics.
   */
  async unsubscribeShared(): Promise<string[]> {
    const topics = this.subscriptions.sharedTopics();
    for (const topic of topics) await this.unsubscribe(topic);
    return topics;
  }

  /**
   * Closes the connection. Graceful by default (DISCONNECT after in-flight publishes settle); `force`
   * drops the socket at once. The broker keeps the session, unless `forgetSession` (graceful only)
   * sends session expiry 0 in the DISCONNECT (MQTT 5 §3.14.2.2.2): then it deletes it and its
   * queued messages. Publishes still pending reject with TransportError; unacknowledged inbound
   * messages are redelivered to the next session.
   */
  async end(opts: { force?: boolean; forgetSession?: boolean } = {}): Promise<void> {
    const client = this.client;
    if (!client) return;
    this.ending = true;
    this.gate?.cancel();
    this.inbound.dispose();
    await this.close(client, opts.force === true || !client.connected, opts.forgetSession === true);
    const error = new TransportError('transport ended');
    for (const reject of [...this.pendingOperations]) reject(error);
    this.pendingOperations.clear();
  }

  /**
   * Stops `client` in whatever state it is in (connected, still connecting, waiting to reconnect,
   * failed first attempt) and resolves once its socket is closed and no MQTT.js timer is left.
   * Idempotent: later calls share the first one's promise.
   */
  private close(client: MqttClient, force: boolean, forgetSession = false): Promise<void> {
    this.closed ??= (async () => {
      // With manualConnect, MQTT.js clears its `disconnecting` flag when end() completes, and end()
      // completes at once when no CONNACK was received, before the socket's 'close' event. That
      // event then arms the reconnect interval again, which keeps reconnecting (connack timer
      // included) forever. A zero reconnect period makes MQTT.js's _setupReconnect a no-op.
      client.options.reconnectPeriod = 0;
      // Session expiry 0 in the DISCONNECT: the broker deletes the session (MQTT 5 §3.14.2.2.2).
      const disconnect = forgetSession ? { properties: { sessionExpiryInterval: 0 } } : {};
      await new Promise<void>((resolve) => client.end(force, disconnect, () => resolve()));
      // The connack timer is cleared on the stream's 'close', which may still be pending.
      await streamClosed(client.stream);
    })();
    return this.closed;
  }

  private requireClient(): MqttClient {
    if (!this.client) throw new TransportError('not connected: call connect() first');
    if (this.ending) throw new TransportError('transport ended');
    return this.client;
  }

  /** Wraps an MQTT.js promise: typed errors, and settled by end() if MQTT.js never settles it. */
  private untilEnd(
    work: Promise<unknown>,
    what: string,
    typed: (cause: unknown) => TransportError = (cause) => {
      const message = cause instanceof Error ? cause.message : String(cause);
      return new TransportError(`${what} failed: ${message}`, { cause });
    },
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const abort = (error: TransportError): void => reject(error);
      this.pendingOperations.add(abort);
      work.then(
        () => {
          this.pendingOperations.delete(abort);
          resolve();
        },
        (cause: unknown) => {
          this.pendingOperations.delete(abort);
          reject(typed(cause));
        },
      );
    });
  }

  private async onConnack(client: MqttClient, connack: IConnackPacket): Promise<void> {
    this.serverMaxPacketSize = connack.properties?.maximumPacketSize;
    // MQTT 5 §3.2.2.3.13: absent means available.
    if (this.options.shareGroup !== undefined && connack.properties?.sharedSubscriptionAvailable === false) {
      const error = new SharedSubscriptionsUnsupportedError(
        `the broker at ${this.options.url} has no shared subscriptions (CONNACK Shared Subscription Available 0)`,
      );
      if (this.failFirstConnect) return this.failFirstConnect(error);
      this.emit('error', error);
      return;
    }
    const sessionPresent = connack.sessionPresent;
    this.gate?.connected();
    const replay = sessionPresent && !this.replayNext ? undefined : this.subscriptions.replay();
    this.replayNext = false;
    if (replay) {
      try {
        await client.subscribeAsync(replay);
      } catch (cause) {
        this.emit('error', subscribeError(cause, 'resubscribe after session loss'));
      }
    }
    this.emit('connect', { sessionPresent });
  }
}
