/**
 * The transport's side of parking (parking.ts holds the storage side): a QoS 1 message whose
 * handler holds later PUBACKs back may be handed to an `InboundParking`, and once that kept it
 * durably it is acknowledged although its handler goes on. Its handler's outcome then goes to the
 * parking, not to the connection: after a failure the parking, not the broker, delivers it again.
 */
import type { AckQueue } from './transport-ack-queue.js';
import type { InboundMessage, InboundParking, ParkTicket } from './transport-types.js';

export type { InboundParking, ParkTicket } from './transport-types.js';

/** One QoS 1 arrival's outcome, reported by the transport once its handler settled. */
export interface TrackedArrival {
  /** The handler resolved: acknowledge in order (and unpark, if parked). */
  succeeded(): void;
  /** The handler rejected: the parking retries a parked message; otherwise `dropConnection`. */
  failed(dropConnection: () => void): void;
}

/** Registers one QoS 1 arrival with the connection's ack queue, parkable when `parking` is given. */
export function trackArrival(
  queue: AckQueue,
  messageId: number,
  message: InboundMessage,
  parking: InboundParking | undefined,
): TrackedArrival {
  let ticket: Promise<ParkTicket | undefined> | undefined;
  const park = parking
    ? () => {
        ticket = parking.park(message).catch(() => undefined);
        return ticket.then((t) => t !== undefined);
      }
    : undefined;
  const arrival = queue.arrive(messageId, park);
  return {
    succeeded: () => {
      arrival.acknowledge();
      void ticket?.then((t) => t?.settle('processed'));
    },
    failed: (dropConnection) => {
      arrival.failed();
      if (!ticket) return dropConnection();
      // A park still being written decides: kept, the parking retries; not kept, the broker must.
      void ticket.then((t) => (t ? t.settle('failed') : dropConnection()));
    },
  };
}
