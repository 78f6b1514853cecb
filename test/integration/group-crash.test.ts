/**
 * A group's committer killed with SIGKILL while members keep proposing (PROTOCOL.md §9 "Delivery":
 * state stored before the PUBACK; commits and Welcomes go out from the outbox). After every restart
 * it resumes; at the end every member is at the same epoch with the same members, the group still
 * carries messages both ways, no member dropped a message as undecryptable ('mls'; the failure shows
 * the members' log lines saying which message and epoch), and a wire tap finds no (epoch, ratchet,
 * generation) of the committer carrying two different messages (a fork or a generation used twice).
 */
import { getTestBroker, type TestBroker } from '../support/broker.js';
import { kill, onPostgres, onSqlite, sleep, startChild, type Child } from '../support/child.js';
import { postgresForTests } from '../support/postgres.js';
import { GenerationTap } from '../support/generation-tap.js';
import { converged, groupTexts, GroupWorld, until, type Member } from '../support/groups.js';

const KILLS = 6;

let broker: TestBroker;
beforeAll(async () => {
  broker = await getTestBroker();
});
afterAll(async () => {
  await broker.close();
});

interface Committer extends Child {
  /** The group it created on its first start, from its "GROUP <id>" line. */
  groupId: Promise<string>;
}

async function startCommitter(env: Record<string, string>): Promise<Committer> {
  let onGroup!: (id: string) => void;
  const groupId = new Promise<string>((r) => (onGroup = r));
  const child = await startChild('group-child.ts', env, (out) => {
    const group = /GROUP ([0-9a-f]{64})/.exec(out);
    if (group) onGroup(group[1]!);
  });
  return { ...child, groupId };
}

async function run(storeEnv: Record<string, string>): Promise<void> {
  const world = new GroupWorld(broker.url, { keepLogs: true });
  const members: Member[] = await Promise.all([1, 2, 3].map(() => world.start()));
  const joiners: Member[] = await Promise.all([1, 2, 3].map(() => world.start()));
  const env = {
    ...storeEnv,
    RELAY_BROKER_URL: broker.url,
    RELAY_PREFIX: world.prefix,
    RELAY_GROUP_MEMBERS: members.map((m) => m.client.userId).join(','),
  };
  let child = await startCommitter(env);
  let tap: GenerationTap | undefined;
  try {
    const groupId = await child.groupId;
    // Every commit the committer publishes, named by (epoch, generation): a commit made again for an
    // epoch after a restart (a fork) or a generation used twice shows as two messages under one name.
    tap = await GenerationTap.start(broker.url, world.prefix, child.userId);
    await tap.tapGroup(groupId, members[0]!.store);
    for (const m of members) await until(() => m.events.some((e) => e.kind === 'joined'), 30_000, 'joined');
    // Members keep proposing (Updates, and Adds of new members) while the committer is killed.
    let proposing = true;
    const proposer = (async () => {
      let i = 0;
      while (proposing) {
        const m = members[i % members.length]!;
        if (i < joiners.length)
          await m.client.addToGroup(groupId, [joiners[i]!.client.userId]).catch(() => undefined);
        else await m.client.updateGroupKeys(groupId).catch(() => undefined);
        i++;
        await sleep(150 + Math.random() * 200);
      }
    })();
    for (let k = 0; k < KILLS; k++) {
      await sleep(300 + Math.random() * 900);
      await kill(child);
      child = await startCommitter(env);
      expect(await child.groupId).toBe(groupId);
    }
    proposing = false;
    await proposer;
    const everyone = [...members, ...joiners];
    await until(() => joiners.every((j) => j.events.some((e) => e.kind === 'joined')), 60_000, 'joiners in');
    await until(
      async () => {
        if (!(await converged(everyone, groupId))) return false;
        return (await everyone[0]!.client.group(groupId))!.members.length === 7;
      },
      60_000,
      'convergence',
    ).catch(async (e: Error) => {
      const seen = await Promise.all(everyone.map((m) => m.client.group(groupId)));
      const drops = everyone.map((m) => m.client.drops.snapshot());
      const state = seen.map((g, i) => ({
        epoch: g?.epoch.toString(),
        members: g?.members.length,
        drops: Object.fromEntries(Object.entries(drops[i]!).filter(([, n]) => n > 0)),
      }));
      const behind = everyone.filter((m, i) => seen[i]?.epoch !== seen[0]?.epoch);
      const detail = await Promise.all(
        behind.map(async (m) => ({
          events: m.events.map((ev) => ev.kind),
          meta: (await m.store.getGroup(groupId))?.meta,
        })),
      );
      throw new Error(`${e.message}: ${JSON.stringify(state)} ${JSON.stringify(detail)}`);
    });
    await joiners[2]!.client.sendToGroup(groupId, '/echo after the crashes');
    for (const m of everyone.filter((x) => x !== joiners[2])) {
      await until(() => groupTexts(m, groupId).includes('echo: after the crashes'), 30_000, 'echo');
    }
    await tap.settle();
    expect({ failures: tap.failures, reused: tap.reused() }).toEqual({ failures: [], reused: [] });
    expect(tap.decoded).toBeGreaterThan(0);
    // Each member with its 'mls' drops and, for any, the log lines that say which messages they were.
    const mls = everyone.map((m, i) => ({
      member: i,
      mls: m.client.drops.get('mls'),
      why:
        m.client.drops.get('mls') > 0
          ? m.log.filter((l) => /rejected|input failed|parked message failed/.test(l))
          : [],
    }));
    expect(mls).toEqual(everyone.map((_, i) => ({ member: i, mls: 0, why: [] })));
  } finally {
    await kill(child);
    await tap?.close();
    await world.close();
  }
}

const pgTest = (await postgresForTests('the Postgres group crash test')) ? test : test.skip;

describe('a committer killed with SIGKILL mid-commit resumes with the group intact', () => {
  test('on SQLite', () => onSqlite(run), 240_000);

  pgTest(
    'on Postgres',
    async () => {
      expect(await onPostgres(run)).toBe(true);
    },
    240_000,
  );
});
