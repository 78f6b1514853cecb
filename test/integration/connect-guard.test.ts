/**
 * The first-connect guard shared by the fence probe and the slot drain (connect-guard.ts), against
 * plain TCP servers that misbehave as brokers: one hangs up at once (MQTT.js would leave connect()
 * pending for good without reconnects), one accepts and never answers.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { connectGuarded } from '../../framework/relay/connect-guard.js';
import { TransportError } from '../../framework/relay/errors.js';
import { probeBroker } from '../../framework/relay/session-claim.js';
import { MqttTransport } from '../../framework/relay/transport.js';

async function tcpServer(onSocket: (s: Socket) => void): Promise<{ url: string; server: Server }> {
  const server = createServer(onSocket);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

const held: Socket[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const s of held.splice(0)) s.destroy();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

test('a socket closed before CONNACK rejects the guarded connect with a TransportError, and the probe says unreachable', async () => {
  const { url, server } = await tcpServer((s) => s.destroy());
  servers.push(server);
  const conn = new MqttTransport({ url, clientId: 'guard-close', reconnectPeriodMs: 0 });
  try {
    const failed = await connectGuarded(conn, 60_000).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(TransportError);
    expect((failed as Error).message).toMatch(/closed before the broker acknowledged/);
  } finally {
    await conn.end({});
  }
  expect(await probeBroker({ url, clientId: 'guard-probe' }, (o) => new MqttTransport(o), 60_000)).toBe(
    false,
  );
}, 20_000);

test('a broker that never answers: the guarded connect gives up after its limit', async () => {
  const { url, server } = await tcpServer((s) => void held.push(s));
  servers.push(server);
  const conn = new MqttTransport({
    url,
    clientId: 'guard-silent',
    reconnectPeriodMs: 0,
    connectTimeoutMs: 60_000,
  });
  try {
    await expect(connectGuarded(conn, 300)).rejects.toThrow(
      /did not acknowledge the connection within 300 ms/,
    );
  } finally {
    await conn.end({});
  }
}, 20_000);
