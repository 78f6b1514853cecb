/**
 * The shapes MqttTransport takes and hands out (options, inbound messages, publish and subscribe
 * settings, events), apart from the class so the transport's helper modules can share them.
 */
import type { IClientOptions } from 'mqtt';
import type { TransportError } from './errors.js';

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
  /**
   * The broker keeps the persistent session under it: stable across restarts, and distinct for
   * every process connected at once (a second connection with the same id takes the session over).
   */
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
  /**
   * MQTT 5 shared subscription group: subscriptions made with `shared: true` become
   * `$share/<shareGroup>/<topic>`, so the broker hands each message to one of the processes in the
   * group. Needs a broker with shared subscriptions (Mosquitto; not the embedded broker): connect()
   * fails when the broker's CONNACK says it has none.
   */
  shareGroup?: string;
}

/** Default session expiry: a week, so a bot that is down over a weekend gets its queued messages back. */
export const DEFAULT_SESSION_EXPIRY_SECONDS = 7 * 24 * 3600;
/** Default limit on our own outbound payloads. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;
/** Default MQTT 5 Receive Maximum we announce: concurrent inbound QoS 1 handlers. */
export const DEFAULT_RECEIVE_MAXIMUM = 64;

/** The QoS levels the transport publishes and subscribes at. */
export type TransportQos = 0 | 1;

/** The MQTT 5 properties of an inbound PUBLISH that the transport passes on. */
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
  /** The topic it was published on; a shared subscription's `$share/<group>/` prefix is never part of it. */
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
  /**
   * Do not receive our own publications (MQTT 5 No Local). Not allowed on a `$share/` filter; on a
   * subscription that `shared` turns into one it is left out, so our own publications do arrive.
   */
  noLocal?: boolean;
  /**
   * Subscribe through the transport's `shareGroup`, when it has one (the broker then hands each
   * message to one process of the group); without a `shareGroup` this changes nothing.
   */
  shared?: boolean;
}

/** What an MqttTransport emits: connection life cycle and errors that reject no call. */
export interface TransportEvents {
  /** Emitted after each CONNACK, once subscriptions a lost session dropped are restored. */
  connect: (info: { sessionPresent: boolean }) => void;
  offline: () => void;
  reconnect: () => void;
  error: (error: TransportError) => void;
  close: () => void;
  /** The broker sent DISCONNECT (MQTT 5), e.g. reason 0x8E: another connection took our client id. */
  disconnect: (info: { reasonCode: number }) => void;
}

/**
 * Keeps a stalled inbound message durably so it may be acknowledged before its handler finishes
 * (parking.ts implements it on the store; transport-parking.ts is the transport's side).
 */
export interface InboundParking {
  /** How long a message may hold back finished later ones before it may be parked. */
  readonly stallMs: number;
  /** Undefined: not kept (over a bound, or the write failed); the message is not acknowledged early. */
  park(message: InboundMessage): Promise<ParkTicket | undefined>;
}

/** A parked message's receipt: report its handler's outcome once it settled. */
export interface ParkTicket {
  settle(outcome: 'processed' | 'failed'): void;
}
