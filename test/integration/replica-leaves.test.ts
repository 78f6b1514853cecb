/**
 * A replica stopping gracefully while another runs (issue #13): it unsubscribes its shared
 * subscriptions first, so Mosquitto hands every later message to the replica left instead of
 * queueing a share of them in the stopped replica's persistent session (where they would wait
 * until that slot runs again). The stopped replica stays registered and live here, so no drain of
 * its session (slot-sessions.ts) can be what answers them.
 */
import { DUTY, LeaseKeeper, type ReceivedMessage } from '../../framework/relay/index.js';
import { freshPgSchema, openPgIn, postgresAvailable, type OpenStore } from '../store/helpers.js';
import { getTestBroker, testBrokers, uniqueName } from '../support/broker.js';
import { GroupWorld, until, type Member } from '../support/groups.js';

const hasMosquitto = (await testBrokers()).includes('mosquitto');
const pgUp = await postgresAvailable('the replica stop test');
const MESSAGES = 12;

(hasMosquitto && pgUp ? test : test.skip)(
  'after one replica stopped, the other answers every message (none waits in the stopped one’s session)',
  async () => {
    const broker = await getTestBroker('mosquitto');
    const world = new GroupWorld(broker.url);
    const { schema, drop } = await freshPgSchema();
    const opened: OpenStore[] = [];
    const keepers: LeaseKeeper[] = [];
    const shareGroup = uniqueName('bots');
    try {
      const replica = async (slot: number): Promise<Member> => {
        const db = await openPgIn(schema);
        opened.push(db);
        const replicaId = `${shareGroup}/${slot}`;
        const keeper = new LeaseKeeper({ store: db.store.leases, replica: { replicaId } });
        keeper.on('error', () => undefined);
        Object.values(DUTY).forEach((d) => keeper.want(d));
        await keeper.start();
        keepers.push(keeper);
        const member = await world.start(db.store, {
          broker: { url: broker.url, shareGroup, replicaSlot: slot },
          duties: keeper,
          replica: { replicaId, registry: db.store.leases },
        });
        member.client.setMessageHandler((m: ReceivedMessage, reply) =>
          reply(`echo: ${String(m.content.content)}`),
        );
        return member;
      };
      const r0 = await replica(0);
      const r1 = await replica(1);
      const peer = await world.start();
      const echoes = (): string[] => peer.messages.map((m) => String(m.content.content));
      await peer.client.send(r0.client.userId, 'hello');
      await until(() => echoes().length === 1, 30_000, 'the first echo');

      // Stopped for good (its keeper, and so its registry entry, stays live).
      await r1.client.stop();
      const texts = Array.from({ length: MESSAGES }, (_, i) => `m${i}`);
      for (const text of texts) await peer.client.send(r0.client.userId, text);
      await until(() => echoes().length >= MESSAGES + 1, 30_000, 'every echo from the replica left').catch(
        () => undefined,
      );
      expect(echoes().sort()).toEqual(['hello', ...texts].map((t) => `echo: ${t}`).sort());
    } finally {
      await world.close();
      for (const k of keepers) await k.stop();
      for (const o of opened) await o.cleanup().catch(() => undefined);
      await drop();
      await broker.close();
    }
  },
  120_000,
);
