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
 * - TCP_NODELAY on every connection (Nagle costs ~88 ms per QoS 1 request/reply on loopback).
 */
import { EventEmitter } from 'eventemitter3';
import {
  connect as mqttConnect,
  type IClientOptions,
  type IConnackPacket,
  type IPublishPacket,
  type ISubscriptionMap,
  type MqttClient,
  type DoneCallback,
} from 'mqtt';
import { ArgumentError, TransportError } from './errors.js';
import { AckQueue } from './transport-ack-queue.js';
import { publishPacketSize, PublishTooLargeError } from './transport-packet-size.js';
import { trackArrival, type InboundParking } from './transport-parking.js';

/** Passed through to MQTT.js (and from there to tls.connect) for mqtts:// and wss:// URLs. */
export type TransportTlsOptions = Pick<
  IClientOptions,
  'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'servername' | 'ALPNProtocols'
>;

/**
 * Connection settings of an MqttTransport; clientId must be stable across restarts, since the broker keeps
 * the persistent session under it.
 */
export interface MqttTransportOptions {
  /** mqtt://, mqtts://, ws:// or wss:// */
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  tls?: TransportTlsOptions;
  /** How long the broker keeps the session (subscriptions, queued messages) while we are away. */
  sessionExpirySeconds?: number;
  keepaliveSeconds?: number;
  reconnectPeriodMs?: number;
  connectTimeoutMs?: number;
  /** Our own outbound payload limit, checked before the broker's Maximum Packet Size. */
  maxPayloadBytes?: number;
  /** Inbound QoS 1 messages the broker may have in flight to us, i.e. concurrent handlers. */
  receiveMaximum?: number;
  /** Keeps stalled messages durably so they may be acknowledged early (transport-parking.ts). */
  parking?: InboundParking;
}

export const DEFAULT_SESSION_EXPIRY_SECONDS = 7 * 24 * 3600;
export const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;
const DEFAULT_KEEPALIVE_SECONDS = 30;
const DEFAULT_RECONNECT_PERIOD_MS = 1000;
const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
const DEFAULT_RECEIVE_MAXIMUM = 64;
const MAX_MESSAGE_EXPIRY_SECONDS = 0xffff_ffff;

export type TransportQos = 0 | 1;

export interface InboundProperties {
  messageExpiryInterval?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Uint8Array;
  userProperties?: Record<string, string | string[]>;
  subscriptionIdentifier?: number | number[];
}

/**
 * One message the broker delivered to us: topic, payload bytes and the MQTT 5 flags and properties it came
 * with.
 */
export interface InboundMessage {
  topic: string;
  payload: Uint8Array;
  properties: InboundProperties;
  /** The broker marked this as a possible redelivery. */
  dup: boolean;
  retain: boolean;
  qos: 0 | 1 | 2;
}

/** Resolve = acknowledge. Reject = do not acknowledge; the broker redelivers after a reconnect. */
export type MessageHandler = (message: InboundMessage) => Promise<void>;

/**
 * How to publish: QoS (default 1), retain (default false), and an MQTT 5 Message Expiry in seconds (default
 * none).
 */
export interface PublishOptions {
  qos?: TransportQos;
  retain?: boolean;
  messageExpirySeconds?: number;
}

/** How to subscribe: the maximum QoS to receive at, and whether to suppress our own publications. */
export interface SubscribeOptions {
  qos: TransportQos;
  /** Do not receive our own publications (MQTT 5 No Local; not allowed on shared subscriptions). */
  noLocal?: boolean;
}

export interface TransportEvents {
  /** Emitted after each CONNACK, once subscriptions a lost session dropped are restored. */
  connect: (info: { sessionPresent: boolean }) => void;
  offline: () => void;
  reconnect: () => void;
  error: (error: TransportError) => void;
  close: () => void;
}

/** The one MQTT.js private we rely on; see `sendPuback`. */
interface PacketWriter {
  _sendPacket(packet: { cmd: 'puback'; messageId: number; reasonCode: number }): void;
}

/**
 * An MQTT 5 client that moves bytes on topics and knows nothing of Relay formats: persistent session,
 * a QoS 1 message acknowledged only once its handler resolved, subscriptions restored after a lost
 * session. RelayClient's transport; usable on its own.
 */
export class MqttTransport extends EventEmitter<TransportEvents> {
  private readonly options: Required<
    Omit<MqttTransportOptions, 'username' | 'password' | 'tls' | 'parking'>
  > &
    Pick<MqttTransportOptions, 'username' | 'password' | 'tls' | 'parking'>;
  private client: MqttClient | undefined;
  private handler: MessageHandler | undefined;
  /** Subscriptions the broker confirmed; replayed when it reports a lost session. */
  private readonly subscriptions = new Map<string, SubscribeOptions>();
  private serverMaxPacketSize: number | undefined;
  /** The connection (stream) the current ack queue belongs to. */
  private ackStream: unknown;
  private ackQueue: AckQueue | undefined;
  private readonly pendingOperations = new Set<(error: TransportError) => void>();
  private ending = false;
  /** Settles once the client is closed for good: no socket, no MQTT.js timer left. */
  private closed: Promise<void> | undefined;

  constructor(options: MqttTransportOptions) {
    super();
    if (!options.clientId) throw new ArgumentError('clientId is required');
    const receiveMaximum = options.receiveMaximum ?? DEFAULT_RECEIVE_MAXIMUM;
    if (!Number.isInteger(receiveMaximum) || receiveMaximum < 1 || receiveMaximum > 65_535) {
      throw new ArgumentError('receiveMaximum must be an integer in 1..65535');
    }
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
    };
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
   * Opens the connection. Rejects (and stops) if the first attempt fails; after the first success,
   * lost connections are re-established automatically every `reconnectPeriodMs`.
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
      reconnectPeriod: o.reconnectPeriodMs,
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
    if (typeof (client as unknown as Partial<PacketWriter>)._sendPacket !== 'function') {
      throw new TransportError('this MQTT.js version lacks _sendPacket; deferred PUBACK unsupported');
    }
    client.handleMessage = (packet, callback) => this.handleInbound(client, packet, callback);

    // Every connection, first or reconnect, starts by writing CONNECT on a fresh socket.
    client.on('packetsend', (packet) => {
      if (packet.cmd === 'connect') disableNagle(client.stream);
    });
    client.on('connect', (connack) => void this.onConnack(client, connack));
    client.on('offline', () => this.emit('offline'));
    client.on('reconnect', () => this.emit('reconnect'));
    client.on('close', () => this.emit('close'));

    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (error: TransportError): void => {
        if (settled) return;
        settled = true;
        this.off('connect', onFirstConnect);
        this.pendingOperations.delete(fail);
        reject(error);
      };
      const onFirstConnect = (info: { sessionPresent: boolean }): void => {
        if (settled) return;
        settled = true;
        this.pendingOperations.delete(fail);
        resolve(info);
      };
      this.once('connect', onFirstConnect);
      // end() while the first attempt is still under way rejects it.
      this.pendingOperations.add(fail);
      client.on('error', (cause) => {
        const error = new TransportError(`MQTT: ${cause.message}`, { cause });
        if (!settled) {
          // Reject only once the client is fully stopped, so a failed connect() leaves nothing behind.
          this.ending = true;
          void this.close(client, true).then(() => fail(error));
          return;
        }
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

  async subscribe(topics: string | string[], opts: SubscribeOptions): Promise<void> {
    const client = this.requireClient();
    const list = Array.isArray(topics) ? topics : [topics];
    if (list.length === 0) return;
    if (opts.qos !== 0 && opts.qos !== 1) throw new ArgumentError('qos must be 0 or 1');
    for (const topic of list) {
      // MQTT 5 §3.8.3.1: No Local on a shared subscription is a Protocol Error.
      if (opts.noLocal && topic.startsWith('$share/')) {
        throw new ArgumentError(`noLocal is not allowed on shared subscription ${topic}`);
      }
    }
    const map: ISubscriptionMap = {};
    for (const topic of list) map[topic] = { qos: opts.qos, nl: opts.noLocal ?? false, rap: false, rh: 0 };
    await this.untilEnd(client.subscribeAsync(map), `subscribe to ${list.join(', ')}`);
    for (const topic of list) this.subscriptions.set(topic, { ...opts });
  }

  async unsubscribe(topic: string): Promise<void> {
    const client = this.requireClient();
    this.subscriptions.delete(topic);
    await this.untilEnd(client.unsubscribeAsync(topic), `unsubscribe from ${topic}`);
  }

  /**
   * Closes the connection. Graceful by default (DISCONNECT after in-flight publishes settle); `force`
   * drops the socket at once. The broker keeps the session either way. Publishes still pending
   * reject with TransportError; unacknowledged inbound messages are redelivered to the next session.
   */
  async end(opts: { force?: boolean } = {}): Promise<void> {
    const client = this.client;
    if (!client) return;
    this.ending = true;
    this.ackQueue?.dispose();
    await this.close(client, opts.force === true || !client.connected);
    const error = new TransportError('transport ended');
    for (const reject of [...this.pendingOperations]) reject(error);
    this.pendingOperations.clear();
  }

  /**
   * Stops `client` in whatever state it is in (connected, still connecting, waiting to reconnect,
   * failed first attempt) and resolves once its socket is closed and no MQTT.js timer is left.
   * Idempotent: later calls share the first one's promise.
   */
  private close(client: MqttClient, force: boolean): Promise<void> {
    this.closed ??= (async () => {
      // With manualConnect, MQTT.js clears its `disconnecting` flag when end() completes, and end()
      // completes at once when no CONNACK was received, before the socket's 'close' event. That
      // event then arms the reconnect interval again, which keeps reconnecting (connack timer
      // included) forever. A zero reconnect period makes MQTT.js's _setupReconnect a no-op.
      client.options.reconnectPeriod = 0;
      await new Promise<void>((resolve) => client.end(force, () => resolve()));
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
  private untilEnd(work: Promise<unknown>, what: string): Promise<void> {
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
          const message = cause instanceof Error ? cause.message : String(cause);
          reject(new TransportError(`${what} failed: ${message}`, { cause }));
        },
      );
    });
  }

  private async onConnack(client: MqttClient, connack: IConnackPacket): Promise<void> {
    this.serverMaxPacketSize = connack.properties?.maximumPacketSize;
    const sessionPresent = connack.sessionPresent;
    if (!sessionPresent && this.subscriptions.size > 0) {
      const map: ISubscriptionMap = {};
      for (const [topic, o] of this.subscriptions) {
        map[topic] = { qos: o.qos, nl: o.noLocal ?? false, rap: false, rh: 0 };
      }
      try {
        await client.subscribeAsync(map);
      } catch (cause) {
        const message = cause instanceof Error ? cause.message : String(cause);
        this.emit(
          'error',
          new TransportError(`resubscribe after session loss failed: ${message}`, { cause }),
        );
      }
    }
    this.emit('connect', { sessionPresent });
  }

  /**
   * Replaces MQTT.js's handleMessage, which sends the PUBACK when its callback is called and
   * processes no further packet (not even PUBACKs of our own publishes or PINGRESP) until then.
   * Calling the callback with an error releases that pipeline without a PUBACK; the PUBACK is sent
   * later by the ack queue, on the same connection only.
   */
  private handleInbound(client: MqttClient, packet: IPublishPacket, callback: DoneCallback): void {
    const message = toInboundMessage(packet);
    const handler = this.handler;
    if (packet.qos === 0) {
      callback();
      if (handler) this.runHandler(handler, message);
      return;
    }
    if (packet.qos === 2 || packet.messageId === undefined) {
      // We subscribe with QoS <= 1, so the broker never sends QoS 2; hold MQTT.js's own flow if it does.
      if (!handler) return callback(new Error('no handler'));
      handler(message).then(
        () => callback(),
        () => callback(new Error('handler rejected')),
      );
      return;
    }

    const stream = client.stream;
    if (this.ackStream !== stream || !this.ackQueue) {
      this.ackQueue?.dispose();
      this.ackStream = stream;
      const parking = this.options.parking;
      this.ackQueue = new AckQueue(
        (messageId) => {
          if (client.stream === stream && client.connected) sendPuback(client, messageId);
        },
        parking && { stallMs: parking.stallMs },
      );
    }
    const parking = handler ? this.options.parking : undefined;
    const arrival = trackArrival(this.ackQueue, packet.messageId, message, parking);
    callback(new Error('PUBACK deferred'));

    if (!handler) {
      this.emit(
        'error',
        new TransportError(`message on ${message.topic} arrived before a handler was registered`),
      );
      return;
    }
    const dropConnection = () => {
      // Without a PUBACK the broker resends only on a new connection (MQTT 5 §4.4).
      if (client.stream === stream && !this.ending) stream.destroy();
    };
    handler(message).then(
      () => arrival.succeeded(),
      () => arrival.failed(dropConnection),
    );
  }

  private runHandler(handler: MessageHandler, message: InboundMessage): void {
    handler(message).catch((cause: unknown) => {
      this.emit('error', new TransportError(`QoS 0 handler for ${message.topic} failed`, { cause }));
    });
  }
}

function sendPuback(client: MqttClient, messageId: number): void {
  // MQTT.js has no public way to acknowledge later without blocking its inbound pipeline.
  (client as unknown as PacketWriter)._sendPacket({ cmd: 'puback', messageId, reasonCode: 0 });
}

/** Resolves when a Node stream has emitted 'close' (at once for streams that do not report it). */
function streamClosed(stream: unknown): Promise<void> {
  const s = stream as
    { closed?: unknown; once?: (event: 'close', listener: () => void) => unknown } | undefined;
  if (!s || typeof s.once !== 'function' || s.closed !== false) return Promise.resolve();
  return new Promise<void>((resolve) => s.once!('close', () => resolve()));
}

function disableNagle(stream: unknown): void {
  // TLS sockets inherit setNoDelay from net.Socket; WebSocket streams have no TCP socket to tune.
  const socket = stream as { setNoDelay?: (noDelay: boolean) => unknown };
  if (typeof socket.setNoDelay === 'function') socket.setNoDelay(true);
}

function toInboundMessage(packet: IPublishPacket): InboundMessage {
  const p = packet.properties ?? {};
  const properties: InboundProperties = {};
  if (p.messageExpiryInterval !== undefined) properties.messageExpiryInterval = p.messageExpiryInterval;
  if (p.contentType !== undefined) properties.contentType = p.contentType;
  if (p.responseTopic !== undefined) properties.responseTopic = p.responseTopic;
  if (p.correlationData !== undefined) properties.correlationData = p.correlationData;
  if (p.userProperties !== undefined) properties.userProperties = { ...p.userProperties };
  if (p.subscriptionIdentifier !== undefined) properties.subscriptionIdentifier = p.subscriptionIdentifier;
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
  return {
    topic: packet.topic,
    payload,
    properties,
    dup: packet.dup,
    retain: packet.retain,
    qos: packet.qos,
  };
}
