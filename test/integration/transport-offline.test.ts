/** The transport without a broker: failed connects, end() during connect or reconnect, early publish. */
import net from 'node:net';
import { TransportError } from '../../framework/relay/errors.js';
import { MqttTransport } from '../../framework/relay/transport.js';
import { startPrivateBroker, uniqueName } from '../support/broker.js';
import { until } from '../support/transport-suite.js';

describe('MqttTransport without a broker', () => {
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

  /** Counts the reconnect attempts MQTT.js makes for `t` (a leaked reconnect timer keeps making them). */
  function reconnects(t: MqttTransport): { count: number } {
    const seen = { count: 0 };
    t.on('reconnect', () => seen.count++);
    t.on('offline', () => seen.count++);
    return seen;
  }

  async function closedPort(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }

  test('connect() rejects with a TransportError when nothing listens, and stops for good', async () => {
    const port = await closedPort();
    const t = new MqttTransport({
      url: `mqtt://127.0.0.1:${port}`,
      clientId: uniqueName('relay-none'),
      reconnectPeriodMs: 20,
    });
    t.on('error', () => {});
    const seen = reconnects(t);
    await expect(t.connect()).rejects.toThrow(TransportError);
    expect(t.connected).toBe(false);
    // No end() yet: a failed connect() must not leave a reconnect timer behind by itself.
    await sleep(200);
    expect(seen.count).toBe(0);
    await t.end();
    await t.end();
    await sleep(100);
    expect(seen.count).toBe(0);
  });

  test('end() while the first CONNACK is outstanding rejects connect() and leaves no timer', async () => {
    const sockets: net.Socket[] = [];
    const server = net.createServer((socket) => sockets.push(socket)); // accepts, never answers
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const t = new MqttTransport({
        url: `mqtt://127.0.0.1:${port}`,
        clientId: uniqueName('relay-mute'),
        reconnectPeriodMs: 20,
        connectTimeoutMs: 60_000,
      });
      t.on('error', () => {});
      const seen = reconnects(t);
      const connecting = t.connect();
      await until<void>('the TCP connection', (resolve) => {
        const poll = setInterval(() => {
          if (sockets.length > 0) {
            clearInterval(poll);
            resolve();
          }
        }, 5);
      });
      await t.end();
      await expect(connecting).rejects.toThrow(TransportError);
      await sleep(200);
      expect(seen.count).toBe(0);
      expect(sockets).toHaveLength(1);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('end() while reconnecting to a vanished broker stops the reconnect loop', async () => {
    const broker = await startPrivateBroker('embedded');
    const t = new MqttTransport({
      url: broker.url,
      clientId: uniqueName('relay-gone'),
      reconnectPeriodMs: 20,
    });
    t.on('error', () => {});
    await t.connect();
    const offline = until<void>('offline', (resolve) => t.once('offline', () => resolve()));
    await broker.close();
    await offline;
    let attempts = 0;
    t.on('reconnect', () => attempts++);
    await until<void>('a few reconnect attempts', (resolve) => {
      const poll = setInterval(() => {
        if (attempts >= 3) {
          clearInterval(poll);
          resolve();
        }
      }, 5);
    });
    await t.end();
    const after = attempts;
    await sleep(200);
    expect(attempts).toBe(after);
  });

  test('publish before connect() is a TransportError', async () => {
    const t = new MqttTransport({ url: 'mqtt://127.0.0.1:1', clientId: uniqueName('relay-none') });
    await expect(t.publish('a/b', new Uint8Array(1))).rejects.toThrow(TransportError);
  });
});
