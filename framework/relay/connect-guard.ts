/**
 * A first connect that always settles, for the connections that never reconnect by themselves: a
 * fenced replica's probe (session-claim.ts) and a drain of a dead replica's session
 * (slot-sessions.ts). With reconnects off, MQTT.js leaves a connect() pending for good when the
 * socket closes before CONNACK (a broker or proxy that accepts and hangs up, a link going down
 * mid-handshake), and a link that drops packets makes it wait; either would stall the sweep or the
 * probe loop behind it for as long as the process runs.
 */
import { TransportError } from './errors.js';

/** The longest a guarded connect may take (connectGuarded's default). */
export const CONNECT_GUARD_MS = 5_000;

/** What the guard needs of a connection: MqttTransport is one. */
export interface GuardedConnection<T> {
  connect(): Promise<T>;
  once(event: 'close', fn: () => void): unknown;
  off(event: 'close', fn: () => void): unknown;
}

/**
 * conn.connect(), but rejected with a TransportError when the connection closes before it
 * resolved, or after limitMs. The caller still ends the connection (it may be half open).
 */
export async function connectGuarded<T>(
  conn: GuardedConnection<T>,
  limitMs: number = CONNECT_GUARD_MS,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onClose: (() => void) | undefined;
  try {
    return await Promise.race([
      conn.connect(),
      new Promise<never>((_, reject) => {
        onClose = () => reject(new TransportError('the connection closed before the broker acknowledged it'));
        conn.once('close', onClose);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(new TransportError(`the broker did not acknowledge the connection within ${limitMs} ms`)),
          limitMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onClose) conn.off('close', onClose);
  }
}
