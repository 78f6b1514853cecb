/**
 * An in-process MQTT 5 broker (aedes 2.0 beta) for development and tests when no Mosquitto is
 * available. Not a production broker: memory persistence only, one process, and aedes 2.0.0-beta.1
 * refuses shared subscriptions (SUBACK 0x9E), so several processes cannot share one bot inbox.
 */
import net from 'node:net';
import { once } from 'node:events';
import { Aedes } from 'aedes';
import { TransportError } from './errors.js';

export interface EmbeddedBrokerOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Advertised in CONNACK and enforced on inbound packets; 0 or absent means no limit. */
  maximumPacketSize?: number;
}

/**
 * A running in-process broker: the mqtt:// URL to hand to clients, its port, and close() to stop it and drop
 * its clients.
 */
export interface EmbeddedBroker {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Starts an in-process MQTT 5 broker on 127.0.0.1 and a free port (by default); for development and tests
 * only. Throws TransportError if it cannot listen.
 */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
  const host = options.host ?? '127.0.0.1';
  const broker = await Aedes.createBroker(
    options.maximumPacketSize ? { maximumPacketSize: options.maximumPacketSize } : {},
  );
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    // Same reason as the client side: Nagle adds ~40-90 ms to every small QoS 1 exchange.
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket);
  });

  server.listen(options.port ?? 0, host);
  try {
    await once(server, 'listening');
  } catch (cause) {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    throw new TransportError(`embedded broker could not listen on ${host}:${options.port ?? 0}`, { cause });
  }
  const address = server.address();
  if (address === null || typeof address === 'string') {
    throw new TransportError('embedded broker has no TCP address');
  }

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      // aedes closes the clients it knows; sockets that never sent CONNECT are ours to end.
      for (const socket of sockets) socket.destroy();
      await serverClosed;
    })();
    return closing;
  };

  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { url: `mqtt://${urlHost}:${address.port}`, port: address.port, close };
}
