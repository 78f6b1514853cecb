// The group shell (group-lanes.ts, group-outbound.ts, group-shell.ts) over the memory store, with a
// recording transport, bundle source and outbox instead of a broker: it commits a step's write
// before anything is published, emits the write's events only once its rows were published,
// subscribes before it commits a group it joins, and runs the write's follow-ups (forgetting a
// group we were removed from) afterwards.
import { pino } from 'pino';
import type { UnixSeconds } from '../../framework/relay/brand.js';
import { ConversationStates } from '../../framework/relay/conversation-states.js';
import type { GroupEvent } from '../../framework/relay/group-types.js';
import { GroupShell } from '../../framework/relay/group-shell.js';
import { KeyedSerialQueue } from '../../framework/relay/keyed-queue.js';
import { MemoryRelayStore } from '../../framework/relay/memory-store.js';
import type { InboundCommit } from '../../framework/relay/store.js';
import { WelcomeQuota } from '../../framework/relay/welcome-quota.js';
import { member, miner, NOW, openRow, type Member } from '../support/group-steps.js';

interface Shell {
  shell: GroupShell;
  store: MemoryRelayStore;
  /** What the shell did, in order. */
  calls: string[];
  events: GroupEvent[];
}

function shellOf(m: Member, peers: readonly Member[]): Shell {
  const store = new MemoryRelayStore();
  const calls: string[] = [];
  const events: GroupEvent[] = [];
  const commit = store.commit.bind(store);
  store.commit = async (changes: InboundCommit) => {
    calls.push('commit');
    return commit(changes);
  };
  const shell = new GroupShell({
    ctx: {
      mls: m.ctx.mls,
      selfId: m.ctx.selfId,
      clock: m.clock,
      random: m.ctx.random,
      seal: m.ctx.seal,
      updateEveryMessages: 1000,
    },
    store,
    states: new ConversationStates(store),
    queue: new KeyedSerialQueue(),
    log: pino({ level: 'silent' }),
    quota: new WelcomeQuota(m.clock),
    maxEnvelopeBytes: 256 * 1024,
    transport: {
      subscribe: async (topic) => void calls.push(`subscribe ${topic}`),
      unsubscribe: async (topic) => void calls.push(`unsubscribe ${topic}`),
    },
    bundles: {
      fetch: async (peer) => peers.find((p) => p.hex === peer)!.bundle,
      scheduleRepublish: () => void calls.push('republish'),
    },
    outbox: { flush: async () => void calls.push('flush') },
    outboxRowError: () => undefined,
    events: {
      emit: (kind: 'group' | 'message', e: unknown) => {
        calls.push(`emit ${kind}`);
        if (kind === 'group') events.push(e as GroupEvent);
      },
    },
    fail: (e) => {
      throw e;
    },
    handler: () => undefined,
  });
  return { shell, store, calls, events };
}

let alice: Member;
let bob: Member;

beforeAll(async () => {
  [alice, bob] = await Promise.all([member(), member()]);
});

afterAll(() => miner.close());

test('create, join from the Welcome, and removal: commit, publish, then events; subscribe before commit, forget after', async () => {
  const a = shellOf(alice, [bob]);
  const b = shellOf(bob, [alice]);
  await b.store.putKeyPackage({
    ...bob.kp,
    ref: Buffer.from(bob.kp.ref).toString('hex'),
    createdAt: NOW,
    notAfter: bob.kp.notAfter as UnixSeconds,
  });
  await a.shell.restore();
  await b.shell.restore();

  const info = await a.shell.create([bob.hex], { name: 'team' });
  const topic = `relay/g/${info.topicId}/m`;
  expect(a.calls).toEqual([`subscribe ${topic}`, 'commit', 'flush', 'emit group']);
  expect(a.events).toEqual([
    { kind: 'created', groupId: info.groupId, topicId: info.topicId, members: [alice.hex, bob.hex] },
  ]);
  const [welcome] = await a.store.listOutbox(10);

  const opened = await openRow(bob, welcome!);
  expect(await b.shell.receiveWelcome(opened, alice.hex, NOW)).toBeUndefined();
  // The Welcome is handled once committed; its event and follow-ups come after, outside the lane.
  await b.shell.settled();
  await new Promise((r) => setImmediate(r));
  expect(b.calls).toEqual([`subscribe ${topic}`, 'commit', 'emit group', 'republish']);
  expect(b.events[0]).toMatchObject({ kind: 'joined', groupId: info.groupId, invitedBy: alice.hex });
  // The same Welcome again is a replay, refused before any MLS work.
  expect(await b.shell.receiveWelcome({ ...opened, digest: 'other' }, alice.hex, NOW)).toBe('welcome_replay');

  await a.store.deleteOutbox([welcome!.id]);
  await a.shell.remove(info.groupId, [bob.hex]);
  const [removal] = await a.store.listOutbox(10);
  expect(removal!.awaitAck).toBe(true);
  b.calls.length = 0;
  expect(await b.shell.receiveTopic(info.topicId, removal!.payload)).toBeUndefined();
  await b.shell.settled();
  expect(b.calls).toEqual(['commit', `unsubscribe ${topic}`, 'emit group']);
  expect(b.events.at(-1)).toEqual({
    kind: 'left',
    groupId: info.groupId,
    topicId: info.topicId,
    reason: 'removed',
  });
  expect(await b.store.getGroup(info.groupId)).toBeUndefined();
  // Forgotten: the topic is no longer ours.
  expect(await b.shell.receiveTopic(info.topicId, removal!.payload)).toBe('unknown_group');
  await a.shell.stop();
  await b.shell.stop();
});

test('a replica subscribes to groups another replica joined and unsubscribes those it left (syncTopics)', async () => {
  const { shell, store, calls } = shellOf(alice, [bob]);
  let stored = [{ groupId: 'g1', topicId: 't1' }];
  store.listGroupSummaries = async () =>
    stored as unknown as Awaited<ReturnType<MemoryRelayStore['listGroupSummaries']>>;
  await shell.restore(); // t1 known from the start (start() subscribes it)
  stored = [
    { groupId: 'g1', topicId: 't1' },
    { groupId: 'g2', topicId: 't2' },
  ];
  expect(await shell.syncTopics()).toEqual({ subscribed: ['t2'], unsubscribed: [] });
  expect(calls.filter((c) => c.startsWith('subscribe') || c.startsWith('unsubscribe'))).toEqual([
    expect.stringMatching(/^subscribe .*\/t2\b/),
  ]);
  // Nothing new: nothing done.
  expect(await shell.syncTopics()).toEqual({ subscribed: [], unsubscribed: [] });
  // Left (on another replica): gone from the store.
  stored = [{ groupId: 'g2', topicId: 't2' }];
  expect(await shell.syncTopics()).toEqual({ subscribed: [], unsubscribed: ['t1'] });
  expect(calls.filter((c) => c.startsWith('unsubscribe'))).toEqual([
    expect.stringMatching(/^unsubscribe .*\/t1\b/),
  ]);
  await shell.stop();
});

test('syncTopics leaves a group this replica set up after the last listing alone', async () => {
  const { shell, store, calls } = shellOf(alice, [bob]);
  store.listGroupSummaries = async () => [];
  await shell.restore();
  // A group being joined here: subscribed and known before it is stored.
  (shell as unknown as { topics: Map<string, string> }).topics.set('t9', 'g9');
  expect(await shell.syncTopics()).toEqual({ subscribed: [], unsubscribed: [] });
  expect(calls.filter((c) => c.startsWith('unsubscribe'))).toEqual([]);
  await shell.stop();
});
