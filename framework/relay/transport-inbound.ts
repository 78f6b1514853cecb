/**
 * The inbound side of MqttTransport: turns MQTT.js PUBLISH packets into InboundMessages, runs the
 * handler, and acknowledges QoS 1 messages only once their handler resolved, in arrival order, on
 * the connection they came on (transport-ack-queue.ts), parking stalled ones when a parking is given.
 */
import type { DoneCallback, IPublishPacket, MqttClient } from 'mqtt';
import { TransportError } from './errors.js';
import { AckQueue } from './transport-ack-queue.js';
import { trackArrival, type InboundParking } from './transport-parking.js';
import type { InboundMessage, InboundProperties, MessageHandler } from './transport-types.js';

/**
 * What handle() gives MQTT.js's callback for every QoS 1 message: MQTT.js only checks that it is
 * set (no PUBACK now) and drops it, so one shared instance does; a new Error per message captured
 * a stack trace each time (~60 K instructions per command, bench/direct-path.ts).
 */
const PUBACK_DEFERRED = new Error('PUBACK deferred');

/** The one MQTT.js private we rely on; see `sendPuback`. */
interface PacketWriter {
  _sendPacket(packet: { cmd: 'puback'; messageId: number; reasonCode: number }): void;
}

/** What the inbound side needs from its transport. */
export interface InboundDeliveryDeps {
  /** The registered handler, if any yet. */
  handler(): MessageHandler | undefined;
  parking: InboundParking | undefined;
  receiveMaximum: number;
  /** The transport is being closed: a failed handler no longer drops the connection. */
  ending(): boolean;
  error(error: TransportError): void;
}

/** Throws when this MQTT.js lacks the private the deferred PUBACK needs (test/integration/mqtt-private-api). */
export function assertDeferredPubackSupported(client: MqttClient): void {
  if (typeof (client as unknown as Partial<PacketWriter>)._sendPacket !== 'function') {
    throw new TransportError('this MQTT.js version lacks _sendPacket; deferred PUBACK unsupported');
  }
}

/** Handles every inbound PUBLISH of one MqttTransport, across its reconnections. */
export class InboundDelivery {
  /** The connection (stream) the current ack queue belongs to. */
  private ackStream: unknown;
  private ackQueue: AckQueue | undefined;

  constructor(private readonly deps: InboundDeliveryDeps) {}

  /** Stops the current ack queue's timer; the transport is closing. */
  dispose(): void {
    this.ackQueue?.dispose();
  }

  /**
   * Replaces MQTT.js's handleMessage, which sends the PUBACK when its callback is called and
   * processes no further packet (not even PUBACKs of our own publishes or PINGRESP) until then.
   * Calling the callback with an error releases that pipeline without a PUBACK; the PUBACK is sent
   * later by the ack queue, on the same connection only.
   */
  handle(client: MqttClient, packet: IPublishPacket, callback: DoneCallback): void {
    const message = toInboundMessage(packet);
    const handler = this.deps.handler();
    if (packet.qos === 0) {
      callback();
      if (handler) this.runQos0(handler, message);
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
    const queue = this.queueFor(client, stream);
    const parking = handler ? this.deps.parking : undefined;
    const arrival = trackArrival(queue, packet.messageId, message, parking);
    callback(PUBACK_DEFERRED);

    if (!handler) {
      this.deps.error(
        new TransportError(`message on ${message.topic} arrived before a handler was registered`),
      );
      return;
    }
    const dropConnection = () => {
      // Without a PUBACK the broker resends only on a new connection (MQTT 5 §4.4).
      if (client.stream === stream && !this.deps.ending()) stream.destroy();
    };
    handler(message).then(
      () => arrival.succeeded(),
      () => arrival.failed(dropConnection),
    );
  }

  /** The ack queue of the connection `stream` belongs to; a new connection starts a new one. */
  private queueFor(client: MqttClient, stream: MqttClient['stream']): AckQueue {
    if (this.ackStream === stream && this.ackQueue) return this.ackQueue;
    this.ackQueue?.dispose();
    this.ackStream = stream;
    const parking = this.deps.parking;
    this.ackQueue = new AckQueue(
      (messageId) => {
        if (client.stream === stream && client.connected) sendPuback(client, messageId);
      },
      parking && { stallMs: parking.stallMs, receiveMaximum: this.deps.receiveMaximum },
    );
    return this.ackQueue;
  }

  private runQos0(handler: MessageHandler, message: InboundMessage): void {
    handler(message).catch((cause: unknown) => {
      this.deps.error(new TransportError(`QoS 0 handler for ${message.topic} failed`, { cause }));
    });
  }
}

function sendPuback(client: MqttClient, messageId: number): void {
  // MQTT.js has no public way to acknowledge later without blocking its inbound pipeline.
  (client as unknown as PacketWriter)._sendPacket({ cmd: 'puback', messageId, reasonCode: 0 });
}

/** The InboundMessage of a PUBLISH packet: its topic name as sent (never a `$share/` filter). */
export function toInboundMessage(packet: IPublishPacket): InboundMessage {
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
