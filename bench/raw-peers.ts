/**
 * The transport-only baseline shared by the store and bot benches: N plain MQTT peers, each
 * publishing a request to `<base>/bot/<i>` and waiting for the echo on `<base>/peer/<i>`.
 */
import { randomBytes } from 'node:crypto';
import { MqttTransport } from '../framework/relay/index.js';

export const REPLY_TIMEOUT_MS = 30_000;

export function withTimeout<T>(p: Promise<T>, what: string, ms = REPLY_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no reply within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export interface RawPeers {
  peers: MqttTransport[];
  /** One request/reply round trip by peer i. */
  once(i: number): Promise<void>;
  /** Connects every peer and subscribes it to its reply topic. */
  connect(): Promise<void>;
  end(): Promise<void>;
}

export function createRawPeers(url: string, base: string, n: number, payloadBytes: number): RawPeers {
  const peers = Array.from(
    { length: n },
    (_, i) => new MqttTransport({ url, clientId: `${base}-p${i}`, sessionExpirySeconds: 0 }),
  );
  const waiters: Array<(() => void) | undefined> = [];
  peers.forEach((p, i) =>
    p.onMessage(async () => {
      const w = waiters[i];
      waiters[i] = undefined;
      w?.();
    }),
  );
  const payload = randomBytes(payloadBytes);
  return {
    peers,
    once: async (i) => {
      const got = new Promise<void>((r) => (waiters[i] = r));
      await peers[i]!.publish(`${base}/bot/${i}`, payload, { qos: 1 });
      await withTimeout(got, 'raw echo');
    },
    connect: async () => {
      await Promise.all(peers.map((p) => p.connect()));
      await Promise.all(peers.map((p, i) => p.subscribe(`${base}/peer/${i}`, { qos: 1 })));
    },
    end: async () => {
      await Promise.all(peers.map((p) => p.end().catch(() => undefined)));
    },
  };
}
