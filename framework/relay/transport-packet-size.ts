/** Size of an MQTT 5 PUBLISH on the wire, to compare with the broker's Maximum Packet Size. */
import { TransportError } from './errors.js';

/**
 * A publish that can never succeed as it is: larger than our own payload limit or the broker's
 * Maximum Packet Size. Retrying does not help, so callers refuse it before committing and the
 * outbox quarantines a stored row that fails with it.
 */
export class PublishTooLargeError extends TransportError {
  readonly permanent = true;
}

/** Bytes of an MQTT Variable Byte Integer (MQTT 5 §1.5.5). */
function varIntLength(n: number): number {
  if (n < 128) return 1;
  if (n < 16_384) return 2;
  if (n < 2_097_152) return 3;
  return 4;
}

/**
 * Total PUBLISH packet size (MQTT 5 §3.3) for the properties this transport sends: at most a
 * Message Expiry Interval (identifier byte + four-byte integer).
 */
export function publishPacketSize(
  topicBytes: number,
  payloadBytes: number,
  qos: 0 | 1,
  hasMessageExpiry: boolean,
): number {
  const propertiesLength = hasMessageExpiry ? 5 : 0;
  const remaining =
    2 + topicBytes + (qos > 0 ? 2 : 0) + varIntLength(propertiesLength) + propertiesLength + payloadBytes;
  return 1 + varIntLength(remaining) + remaining;
}
