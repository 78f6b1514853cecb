/**
 * A TCP relay in front of the broker for one client, whose link can be cut and restored: cut()
 * closes every relayed connection and refuses new ones (as a broker host gone from the network
 * would), restore() lets connections through again. Postgres is not behind it, so a replica on it
 * keeps reaching its database while it cannot reach the broker.
 */
import net from 'node:net';

export interface CuttableLink {
  /** mqtt://127.0.0.1:<port>, for the client's broker url. */
  readonly url: string;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

/** Starts a link (up) on a free port of 127.0.0.1 in front of the broker at `brokerPort`. */
export async function startCuttableLink(brokerPort = 1883, brokerHost = '127.0.0.1'): Promise<CuttableLink> {
  let up = true;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (!up) {
      client.destroy();
      return;
    }
    const upstream = net.connect(brokerPort, brokerHost);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client).add(upstream);
    const closeBoth = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', closeBoth).on('close', closeBoth);
    upstream.on('error', closeBoth).on('close', closeBoth);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const destroyAll = (): void => {
    for (const s of sockets) s.destroy();
    sockets.clear();
  };
  return {
    url: `mqtt://127.0.0.1:${port}`,
    cut: () => {
      up = false;
      destroyAll();
    },
    restore: () => void (up = true),
    close: () =>
      new Promise<void>((resolve) => {
        destroyAll();
        server.close(() => resolve());
      }),
  };
}
