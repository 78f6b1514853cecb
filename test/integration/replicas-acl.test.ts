/**
 * Replicas behind a Mosquitto ACL (issue #13, README "Replicas"): a private Mosquitto with a
 * password file and the shipped ACL (deploy/mosquitto/acl), two replicas of one bot logging in with the
 * bot's user id as username, and a peer logging in with its own. Mosquitto checks a shared
 * subscription against its topic without the `$share/<group>/` prefix, so the plain inbox line
 * grants the replicas' `$share/…/inbox` subscriptions, and refuses them to anyone else.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { connect } from 'mqtt';
import {
  DUTY,
  LeaseKeeper,
  MemoryRelayStore,
  RelayClient,
  type RelayStore,
} from '../../framework/relay/index.js';
import { freshPgSchema, openPgIn, postgresAvailable, type OpenStore } from '../store/helpers.js';
import { startPrivateBroker, testBrokers, uniqueName, type TestBroker } from '../support/broker.js';
import { GroupWorld, until, type Member } from '../support/groups.js';

const run = promisify(execFile);
const hasMosquitto = (await testBrokers()).includes('mosquitto');
const hasPasswd = await run('mosquitto_passwd', ['-h']).then(
  () => true,
  (e: { code?: unknown }) => e.code !== 'ENOENT',
);
const pgUp = await postgresAvailable('the replica ACL test');
const MESSAGES = 10;

/** The shipped ACL (deploy/mosquitto/acl) for `prefix`: it is written for the prefix "relay". */
async function shippedAcl(prefix: string): Promise<string> {
  const text = await readFile(path.join(process.cwd(), 'deploy/mosquitto/acl'), 'utf8');
  return text.replaceAll(' relay/', ` ${prefix}/`);
}

/** The user id a store's identity has, made (and saved) on first use; nothing connects. */
async function userIdOf(store: RelayStore, prefix: string): Promise<string> {
  const client = await RelayClient.create({
    store,
    broker: { url: 'mqtt://127.0.0.1:1' },
    topicPrefix: prefix,
  });
  return client.userId;
}

/** A client logged in as `username` subscribed to `filters`; `received` counts what reaches it. */
async function spy(url: string, username: string, password: string, filters: string[]) {
  const client = connect(url, { protocolVersion: 5, clientId: uniqueName('spy'), username, password });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  let received = 0;
  client.on('message', () => received++);
  const granted = await client.subscribeAsync(filters, { qos: 1 });
  return { granted: granted.map((g) => g.qos), received: () => received, close: () => client.endAsync(true) };
}

(hasMosquitto && hasPasswd && pgUp ? test : test.skip)(
  'replicas subscribe to their inbox as a shared subscription under an ACL without $share lines',
  async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'relay-acl-'));
    // Mosquitto started as root reads its files as the `mosquitto` user.
    await chmod(dir, 0o755);
    const { schema, drop } = await freshPgSchema();
    const opened: OpenStore[] = [];
    let broker: TestBroker | undefined;
    let world: GroupWorld | undefined;
    const answeredBy = new Map<string, number>();
    const keepers: LeaseKeeper[] = [];
    const spies: Array<{ close(): Promise<void> }> = [];
    try {
      const prefix = uniqueName('acl');
      const db = await openPgIn(schema);
      opened.push(db);
      const botId = await userIdOf(db.store, prefix);
      const leases = db.store.leases;
      const peerStore = new MemoryRelayStore();
      const peerId = await userIdOf(peerStore, prefix);
      const passwords = path.join(dir, 'passwords');
      await run('mosquitto_passwd', ['-c', '-b', passwords, botId, 'bot-secret']);
      await run('mosquitto_passwd', ['-b', passwords, peerId, 'peer-secret']);
      const acl = path.join(dir, 'acl');
      await writeFile(acl, await shippedAcl(prefix));
      broker = await startPrivateBroker('mosquitto', {
        extraConfig: [`password_file ${passwords}`, `acl_file ${acl}`],
      });
      world = new GroupWorld(broker.url);

      const shareGroup = uniqueName('bots');
      const replica = async (slot: number, store: RelayStore): Promise<Member> => {
        const keeper = new LeaseKeeper({ store: leases, replica: { replicaId: `${shareGroup}/${slot}` } });
        keeper.on('error', () => undefined);
        Object.values(DUTY).forEach((d) => keeper.want(d));
        await keeper.start();
        keepers.push(keeper);
        const member = await world!.start(store, {
          topicPrefix: prefix,
          broker: {
            url: broker!.url,
            shareGroup,
            replicaSlot: slot,
            username: botId,
            password: 'bot-secret',
          },
          duties: keeper,
        });
        member.client.setMessageHandler((m, reply) => {
          answeredBy.set(`${slot}`, (answeredBy.get(`${slot}`) ?? 0) + 1);
          return reply(`echo: ${String(m.content.content)}`);
        });
        return member;
      };
      const r0 = await replica(0, db.store);
      const db1 = await openPgIn(schema);
      opened.push(db1);
      await replica(1, db1.store);
      const peer = await world.start(peerStore, {
        topicPrefix: prefix,
        broker: { url: broker.url, username: peerId, password: 'peer-secret' },
      });
      const echoes = (): string[] => peer.messages.map((m) => String(m.content.content));
      const inbox = `${prefix}/u/${botId}/inbox`;
      const spied = await spy(broker.url, peerId, 'peer-secret', [
        inbox,
        `$share/${uniqueName('g')}/${inbox}`,
      ]);
      spies.push(spied);
      await peer.client.send(r0.client.userId, 'hello');
      await until(() => echoes().length === 1, 30_000, 'the first echo');
      const texts = Array.from({ length: MESSAGES }, (_, i) => `m${i}`);
      for (const text of texts) await peer.client.send(r0.client.userId, text);
      await until(() => echoes().length >= MESSAGES + 1, 60_000, 'every echo');
      expect(echoes().sort()).toEqual(['hello', ...texts].map((t) => `echo: ${t}`).sort());
      // Both replicas took messages from the shared subscription.
      expect([...answeredBy.keys()].sort()).toEqual(['0', '1']);

      // The ACL is enforced on delivery, on the topic inside the `$share/` filter: Mosquitto
      // grants the peer's SUBSCRIBEs to the bot's inbox but delivers nothing through them. (Its
      // share group differs from the replicas': in theirs it would take a share and drop it, which
      // is why the README says to keep the share group name to the bot's operators.)
      expect(spied.granted).toEqual([1, 1]);
      expect(spied.received()).toBe(0);
    } finally {
      for (const sp of spies) await sp.close();
      await world?.close();
      for (const k of keepers) await k.stop();
      for (const o of opened) await o.cleanup().catch(() => undefined);
      await drop();
      await broker?.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
  120_000,
);
