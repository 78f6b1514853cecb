/**
 * A TCP forwarder in the test process: listens on an address of the root namespace that a test
 * host can reach (its gateway) and relays each connection to a service that listens on loopback
 * only (the machine's Postgres). The machine's services stay as they are configured.
 *
 * It relays bytes and nothing else: when a host's link is cut, its connections stall rather than
 * close, exactly as they would through a router.
 */
import net from 'node:net';

export interface TcpForwarder {
  readonly host: string;
  readonly port: number;
  /** Stops listening and destroys every relayed connection. */
  close(): Promise<void>;
}

export async function forwardTcp(
  listenHost: string,
  target: { host: string; port: number },
): Promise<TcpForwarder> {
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const server = net.createServer((downstream) => {
    const upstream = net.connect(target.port, target.host);
    track(downstream);
    track(upstream);
    downstream.setNoDelay(true);
    upstream.setNoDelay(true);
    downstream.pipe(upstream);
    upstream.pipe(downstream);
    // One side failing ends the other, as a closed connection through a router would.
    downstream.on('error', () => upstream.destroy());
    upstream.on('error', () => downstream.destroy());
    downstream.on('close', () => upstream.destroy());
    upstream.on('close', () => downstream.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, listenHost, () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    host: listenHost,
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
