/**
 * A replica that keeps losing the race for one conversation (issue #13, retry-stale.ts): two
 * RelayClients of one identity on one Postgres schema, and a store wrapper that, before a replica
 * commits a peer's message, has the OTHER replica send into the same 1:1 session, which commits
 * the conversation first. The losing replica's commit is then really stale (the row moved on), and
 * it loses 8 times in a row. The message must still be answered once, without the connection
 * being dropped (before, the 6th loss was thrown to the transport, which reconnected).
 */
import type { EventEmitter } from 'node:events';
import type { InboundCommit, RelayStore, UserIdHex } from '../../framework/relay/index.js';
import { freshPgSchema, openPgIn, postgresAvailable, type OpenStore } from '../store/helpers.js';
import { getTestBroker, testBrokers, uniqueName } from '../support/broker.js';
import { GroupWorld, until, type Member } from '../support/groups.js';

const hasMosquitto = (await testBrokers()).includes('mosquitto');
const pgUp = await postgresAvailable('the stale-retry replica test');
const LOSSES = 8;

(hasMosquitto && pgUp ? test : test.skip)(
  'a replica that loses the race for a conversation 8 times in a row still answers, connected',
  async () => {
    const broker = await getTestBroker('mosquitto');
    const world = new GroupWorld(broker.url);
    const { schema, drop } = await freshPgSchema();
    const opened: OpenStore[] = [];
    const shareGroup = uniqueName('bots');
    const replicas: Member[] = [];
    const connectionDrops: string[] = [];
    let peerId: UserIdHex | undefined;
    let lossesLeft = 0;
    let bumping = false;
    const losses: number[] = [];
    try {
      const replica = async (slot: number): Promise<Member> => {
        const db = await openPgIn(schema);
        opened.push(db);
        const other = () => replicas[1 - slot]!;
        // The other replica commits the session between this one's read and its commit.
        const commit = async (c: InboundCommit) => {
          const inboundDirect = c.envelope && c.conversations?.some((r) => r.kind === 'direct');
          if (inboundDirect && lossesLeft > 0 && !bumping && peerId) {
            lossesLeft--;
            losses.push(slot);
            bumping = true;
            try {
              await other().client.send(peerId, `bump ${LOSSES - lossesLeft}`);
            } finally {
              bumping = false;
            }
          }
          return db.store.commit(c);
        };
        const store = new Proxy(db.store, {
          get(target, prop) {
            if (prop === 'commit') return commit;
            const v: unknown = Reflect.get(target, prop, target);
            return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
          },
        }) as RelayStore;
        const member = await world.start(store, {
          broker: { url: broker.url, shareGroup, replicaSlot: slot },
        });
        // The transport is private; its reconnect is what a thrown inbound error ends in.
        const transport = (member.client as unknown as { transport: EventEmitter }).transport;
        transport.on('offline', () => connectionDrops.push(`${slot} offline`));
        transport.on('reconnect', () => connectionDrops.push(`${slot} reconnect`));
        member.client.setMessageHandler((m, reply) => reply(`echo: ${String(m.content.content)}`));
        return member;
      };
      replicas.push(await replica(0));
      replicas.push(await replica(1));
      const peer = await world.start();
      peerId = peer.client.userId;
      const echoes = (): string[] =>
        peer.messages.map((m) => String(m.content.content)).filter((t) => t.startsWith('echo: '));
      await peer.client.send(replicas[0]!.client.userId, 'hello');
      await until(() => echoes().length === 1, 30_000, 'the first echo');

      lossesLeft = LOSSES;
      await peer.client.send(replicas[0]!.client.userId, 'contended');
      await until(() => echoes().length === 2, 60_000, 'the contended echo');
      await peer.client.send(replicas[0]!.client.userId, 'after');
      await until(() => echoes().length === 3, 30_000, 'the echo after');
      await new Promise((r) => setTimeout(r, 1000)); // a second answer to any message would come now

      expect(losses).toHaveLength(LOSSES);
      // One replica lost every race for the contended message: more than the old 5 attempts.
      expect(new Set(losses).size).toBe(1);
      expect(connectionDrops).toEqual([]);
      expect(echoes()).toEqual(['echo: hello', 'echo: contended', 'echo: after']);
    } finally {
      await world.close();
      for (const o of opened) await o.cleanup().catch(() => undefined);
      await drop();
      await broker.close();
    }
  },
  120_000,
);
