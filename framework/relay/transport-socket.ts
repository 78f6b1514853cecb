/** What MqttTransport does to the network stream under MQTT.js: Nagle off, and waiting for close. */

/** Resolves when a Node stream has emitted 'close' (at once for streams that do not report it). */
export function streamClosed(stream: unknown): Promise<void> {
  const s = stream as
    { closed?: unknown; once?: (event: 'close', listener: () => void) => unknown } | undefined;
  if (!s || typeof s.once !== 'function' || s.closed !== false) return Promise.resolve();
  return new Promise<void>((resolve) => s.once!('close', () => resolve()));
}

/** Sets TCP_NODELAY (Nagle costs ~88 ms per QoS 1 request/reply on loopback; ARCHITECTURE.md). */
export function disableNagle(stream: unknown): void {
  // TLS sockets inherit setNoDelay from net.Socket; WebSocket streams have no TCP socket to tune.
  const socket = stream as { setNoDelay?: (noDelay: boolean) => unknown };
  if (typeof socket.setNoDelay === 'function') socket.setNoDelay(true);
}
