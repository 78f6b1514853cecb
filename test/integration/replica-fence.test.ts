/**
 * Fencing a replica that lost the broker but not Postgres (issue 13), through Mosquitto and
 * Postgres: replica A reaches the broker through a link the test cuts, replica B directly. While A
 * is cut off it could go on beating in the registry for ever, and then nobody would take over its
 * duties, its committed-but-unpublished outbox rows, or what the broker queues in its session. A
 * fences itself once its link has been down for fenceAfterMs: its duties go to B, and once its
 * heartbeat is stale B publishes A's rows and drains A's session. When the link comes back, A
 * rejoins: it beats again and competes for the duties.
 *
 * A dead `replicaSlot: auto` replica's session is drained as a fixed slot's is: its client id is
 * told by the slot lease it held (dead-replicas.ts).
 */
import {
  DUTY,
  replicaSlotLease,
  MemoryRelayStore,
  RelayClient,
  type ReceivedMessage,
} from '../../framework/relay/index.js';
import { userIdFromHex } from '../../framework/relay/identity.js';
import { inboxTopic } from '../../framework/relay/topics.js';
import { MqttTransport } from '../../framework/relay/transport.js';
import { uniqueName } from '../support/broker.js';
import { useEchoReplicas, type EchoReplica } from '../support/echo-replicas.js';
import { until } from '../support/groups.js';
import { startCuttableLink } from '../support/link-cut.js';

/** Short leases and a short fence, so everything moves within seconds. */
const TTL_MS = 3000;
const FENCE_AFTER_MS = 1000;

const replicas = await useEchoReplicas('the replica fencing test', {
  ttlMs: TTL_MS,
  fenceAfterMs: FENCE_AFTER_MS,
});
const run = replicas.runnable ? test : test.skip;

run(
  'a replica cut off from the broker fences itself: another takes its duties, its rows and its queued share; it rejoins when the link is back',
  async () => {
    await replicas.onSchema(async (env) => {
      const prefix = uniqueName('fence');
      const shareGroup = uniqueName('bots');
      const link = await startCuttableLink(Number(new URL(replicas.broker().url).port));
      replicas.onCleanup(() => link.close());
      const a = await replicas.start(env, { url: link.url, prefix, shareGroup, slot: 0 });
      // A's stop waits for what it has in flight: runs first, with the link back.
      replicas.onCleanup(async () => link.restore());
      const duties = Object.values(DUTY).sort();
      // Besides the duties each replica holds its session lease (session-claim.ts) while unfenced.
      const dutiesOf = (r: EchoReplica): string =>
        r.keeper
          .owned()
          .filter((n) => !n.startsWith('mqtt-session/'))
          .join();
      await until(() => dutiesOf(a) === duties.join(), 10_000, 'A to own every duty');
      const b = await replicas.start(env, { prefix, shareGroup, slot: 1 });

      const peer = await RelayClient.create({
        store: new MemoryRelayStore(),
        broker: { url: replicas.broker().url },
        topicPrefix: prefix,
      });
      const got: ReceivedMessage[] = [];
      peer.on('message', (m) => got.push(m));
      await peer.start();
      replicas.onCleanup(() => peer.stop());
      const texts = (): string[] => got.map((m) => String(m.content.content));
      await peer.send(a.client.userId, 'hello');
      await until(() => texts().includes('echo: hello'), 30_000, 'the first echo');

      link.cut();
      // Committed on A (Postgres answers) but never published while A is cut off.
      void a.client.send(peer.userId, 'from A while cut off').catch(() => undefined);
      await until(
        async () => (await a.store.listOutboxOwners()).includes(`${shareGroup}/0`),
        10_000,
        "A's committed row",
      );
      // Round robin hands some of these to A's session, which waits for A.
      const commands = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'];
      for (const c of commands) await peer.send(a.client.userId, c);

      await until(() => dutiesOf(b) === duties.join(), 20_000, 'B to own every duty');
      expect(a.keeper.owned()).toEqual([]);
      await until(() => texts().includes('from A while cut off'), 30_000, "A's row, published by B");
      await until(
        () => commands.every((c) => texts().includes(`echo: ${c}`)),
        30_000,
        'every command sent while A was cut off, answered by B',
      );

      link.restore();
      await until(
        async () =>
          (await b.store.leases.listReplicas(TTL_MS)).some(
            (r) => r.replicaId === `${shareGroup}/0` && r.live,
          ),
        20_000,
        'A to beat again',
      );
      // A competes for the duties again: B's graceful stop hands them to A.
      await b.client.stop();
      await b.keeper.stop();
      await until(() => dutiesOf(a) === duties.join(), 20_000, 'A to own every duty again');
      expect(a.client.connected).toBe(true);
      await peer.send(a.client.userId, 'after');
      await until(() => texts().includes('echo: after'), 30_000, "A's answer after rejoining");
      // Receivers drop a copy (replay cache): each text arrived once.
      expect(texts().length).toBe(new Set(texts()).size);
    });
  },
  150_000,
);

run(
  "a dead replicaSlot: auto replica's queued share is drained through the slot it held",
  async () => {
    await replicas.onSchema(async (env) => {
      const prefix = uniqueName('fence-auto');
      const shareGroup = uniqueName('bots');
      const b = await replicas.start(env, { prefix, shareGroup, slot: 1 });
      const peer = await RelayClient.create({
        store: new MemoryRelayStore(),
        broker: { url: replicas.broker().url },
        topicPrefix: prefix,
      });
      const got: string[] = [];
      peer.on('message', (m) => got.push(String(m.content.content)));
      await peer.start();
      replicas.onCleanup(() => peer.stop());
      await peer.send(b.client.userId, 'hello');
      await until(() => got.includes('echo: hello'), 30_000, 'the first echo');

      // An auto replica as `relay-bot start` leaves one killed with SIGKILL: registered under an id
      // that names no slot, holding slot 5's lease, its broker session in the share group.
      const dead = `${shareGroup}/host-0badf00d`;
      await b.store.leases.registerReplica({ replicaId: dead });
      expect(await b.store.leases.acquireLease(replicaSlotLease(5), dead, TTL_MS)).toBeDefined();
      const session = new MqttTransport({
        url: replicas.broker().url,
        clientId: `relay-${b.client.userId}-5`,
        shareGroup,
      });
      session.onMessage(async () => undefined);
      await session.connect();
      await session.subscribe(inboxTopic(prefix, userIdFromHex(b.client.userId)), {
        qos: 1,
        shared: true,
      });
      await session.end({ force: true });

      // Round robin hands some of these to the dead session; once it is stale, B drains it.
      const commands = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6'];
      for (const c of commands) await peer.send(b.client.userId, c);
      await until(
        () => commands.every((c) => got.includes(`echo: ${c}`)),
        30_000,
        "every command, those queued in the dead auto replica's session included",
      );
      expect(got.length).toBe(new Set(got).size);
    });
  },
  90_000,
);
