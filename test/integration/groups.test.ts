/**
 * N-way groups through a real broker (Mosquitto when it answers) with the bot on Postgres when it
 * answers (PROTOCOL.md §9): creation, Adds, Removes, Updates, concurrent proposals, many groups,
 * members that miss commits, and removed members.
 */
import { connect } from 'mqtt';
import {
  decodeGroupPayload,
  fromHex,
  ManualClock,
  asUnixSeconds,
  generateIdentity,
  MemoryRelayStore,
  mls,
  userIdToHex,
} from '../../framework/relay/index.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';
import { RawMqtt } from '../support/attacker.js';
import { converged, groupTexts, GroupWorld, until, type Member } from '../support/groups.js';

let broker: TestBroker;
let world: GroupWorld;

beforeAll(async () => {
  broker = await getTestBroker();
});
afterAll(async () => {
  await broker.close();
});
beforeEach(() => {
  world = new GroupWorld(broker.url);
});
afterEach(async () => {
  await world.close();
});

/** Connects once with a clean start and no expiry, which discards the broker's session for that id. */
async function dropBrokerSession(clientId: string): Promise<void> {
  const client = connect(broker.url, {
    protocolVersion: 5,
    clientId,
    clean: true,
    reconnectPeriod: 0,
    properties: { sessionExpiryInterval: 0 },
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.endAsync();
}

/** A bot: answers every group message that starts with "/echo " in the group, transactionally. */
async function startBot(): Promise<Member> {
  const bot = await world.start(await world.durableStore());
  bot.client.setMessageHandler((m, reply) => {
    if (m.content.content.startsWith('/echo ')) reply(`echo: ${m.content.content.slice(6)}`);
  });
  return bot;
}

test('a bot and four clients: create, add, remove, update, and the removed member can no longer read', async () => {
  const bot = await startBot();
  const [a, b, c, d] = await Promise.all([world.start(), world.start(), world.start(), world.start()]);
  const group = await bot.client.createGroup([a!.client.userId, b!.client.userId, c!.client.userId], {
    name: 'five',
  });
  expect(group.isCommitter).toBe(true);
  expect(group.members).toHaveLength(4);
  for (const m of [a!, b!, c!]) {
    await until(() => m.events.some((e) => e.kind === 'joined' && e.groupId === group.groupId));
  }
  expect(a!.events.find((e) => e.kind === 'joined')).toMatchObject({ invitedBy: bot.client.userId });
  // The name travels in the group Welcome (our InnerPayload key 11).
  expect((await a!.client.group(group.groupId))!.name).toBe('five');

  // A member asks the bot; the reply comes back on the group topic to every member.
  const { id } = await a!.client.sendToGroup(group.groupId, '/echo hi');
  for (const m of [b!, c!]) await until(() => groupTexts(m, group.groupId).includes('echo: hi'));
  const reply = b!.messages.find((m) => m.content.content === 'echo: hi')!;
  expect(reply.from).toBe(bot.client.userId);
  expect(reply.content.replyTo).toBe(id);
  expect(reply.conversation).toMatchObject({ kind: 'group', groupId: group.groupId });
  expect(groupTexts(b!, group.groupId)).toContain('/echo hi');

  // Add (by a non-committer: a proposal the bot commits), then the new member talks.
  await b!.client.addToGroup(group.groupId, [d!.client.userId]);
  await until(() => d!.events.some((e) => e.kind === 'joined'));
  await until(() => converged([bot, a!, b!, c!, d!], group.groupId));
  await d!.client.sendToGroup(group.groupId, 'd is here');
  for (const m of [bot, a!, b!, c!]) await until(() => groupTexts(m, group.groupId).includes('d is here'));

  // Update: a non-committer proposes, the committer commits; everyone moves on.
  const before = (await bot.client.group(group.groupId))!.epoch;
  await c!.client.updateGroupKeys(group.groupId);
  await until(async () => (await bot.client.group(group.groupId))!.epoch > before);
  await until(() => converged([bot, a!, b!, c!, d!], group.groupId));

  // Remove c, recording what c's old state would be able to decrypt afterwards.
  const cState = await c!.store.getGroup(group.groupId);
  const raw = await RawMqtt.connect(broker.url);
  const topic = `${world.prefix}/g/${group.topicId}/m`;
  const seen = () => raw.captured(topic);
  await raw.watch(topic);
  await bot.client.removeFromGroup(group.groupId, [c!.client.userId]);
  await until(() => c!.events.some((e) => e.kind === 'left' && e.groupId === group.groupId));
  expect(c!.events.find((e) => e.kind === 'left')).toMatchObject({ reason: 'removed' });
  expect(await c!.client.group(group.groupId)).toBeUndefined();
  await until(() => converged([bot, a!, b!, d!], group.groupId));
  const removedCount = seen().length;
  await a!.client.sendToGroup(group.groupId, 'after c left');
  for (const m of [bot, b!, d!]) await until(() => groupTexts(m, group.groupId).includes('after c left'));
  await until(() => seen().length > removedCount);
  expect(groupTexts(c!, group.groupId)).not.toContain('after c left');
  // c's last state (even one that had processed the removing commit) cannot open the new message.
  const ctx = await mls.createMlsContext();
  const last = decodeGroupPayload(seen()[seen().length - 1]!);
  await expect(
    mls.processGroupMessage(ctx, mls.decodeStoredSession(cState!.state, cState!.epochState), last),
  ).rejects.toThrow();
  await raw.close();
  for (const m of world.members) expect(m.client.drops.get('mls')).toBe(0);
});

test('three members propose at once; the committer commits them and everyone converges', async () => {
  const bot = await startBot();
  const [a, b, c, x, y] = await Promise.all([1, 2, 3, 4, 5].map(() => world.start()));
  const group = await bot.client.createGroup([a, b, c, y].map((m) => m!.client.userId));
  for (const m of [a, b, c, y]) await until(() => m!.events.some((e) => e.kind === 'joined'));
  await Promise.all([
    a!.client.addToGroup(group.groupId, [x!.client.userId]),
    b!.client.removeFromGroup(group.groupId, [y!.client.userId]),
    c!.client.updateGroupKeys(group.groupId),
  ]);
  await until(() => x!.events.some((e) => e.kind === 'joined'), 30_000, 'x joined');
  await until(() => y!.events.some((e) => e.kind === 'left'), 30_000, 'y removed');
  await until(() => converged([bot, a!, b!, c!, x!], group.groupId), 30_000, 'convergence');
  const info = (await bot.client.group(group.groupId))!;
  expect(info.members.map((m) => m.userId).sort()).toEqual(
    [bot, a, b, c, x].map((m) => m!.client.userId).sort(),
  );
  await x!.client.sendToGroup(group.groupId, 'hello from x');
  for (const m of [bot, a!, b!, c!]) await until(() => groupTexts(m, group.groupId).includes('hello from x'));
});

test('a bot in 50 groups at once answers in each', async () => {
  const bot = await startBot();
  const [a, b] = await Promise.all([world.start(), world.start()]);
  const groups = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      (i % 2 === 0 ? a! : b!).client.createGroup([bot.client.userId], { name: `g${i}` }),
    ),
  );
  await until(() => bot.events.filter((e) => e.kind === 'joined').length === 50, 60_000, '50 joins');
  expect((await bot.client.groups()).length).toBe(50);
  await Promise.all(
    groups.map((g, i) => (i % 2 === 0 ? a! : b!).client.sendToGroup(g.groupId, `/echo ${i}`)),
  );
  await until(
    () =>
      [...a!.messages, ...b!.messages].filter((m) => m.content.content.startsWith('echo: ')).length === 50,
    60_000,
    '50 echoes',
  );
  for (const [i, g] of groups.entries()) {
    expect(groupTexts(i % 2 === 0 ? a! : b!, g.groupId)).toEqual([`echo: ${i}`]);
  }
});

/**
 * A bot's group with a durable member `a` and four others; `a` stops, optionally losing its broker
 * session (then the commits are never delivered to it), and three commits add c, d and e.
 */
async function threeCommitsWithoutA(loseBrokerSession: boolean) {
  const bot = await startBot();
  const aStore = await world.durableStore();
  const a = await world.start(aStore);
  const [b, c, d, e] = (await Promise.all([1, 2, 3, 4].map(() => world.start()))) as Member[];
  const group = await bot.client.createGroup([a.client.userId, b!.client.userId]);
  await until(() => a.events.some((ev) => ev.kind === 'joined'));
  await until(() => b!.events.some((ev) => ev.kind === 'joined'));
  await world.stop(a);
  if (loseBrokerSession) await dropBrokerSession(`relay-${a.client.userId}`);
  for (const m of [c!, d!, e!]) await bot.client.addToGroup(group.groupId, [m.client.userId]);
  const others = [bot, b!, c!, d!, e!];
  await until(() => converged(others, group.groupId));
  return { group, aStore, others, b: b!, c: c! };
}

test('a member offline across three commits catches up from its broker session', async () => {
  const { group, aStore, others, b } = await threeCommitsWithoutA(false);
  const a2 = await world.start(aStore);
  await until(() => converged([...others, a2], group.groupId), 30_000, 'a caught up');
  await b.client.sendToGroup(group.groupId, 'welcome back');
  await until(() => groupTexts(a2, group.groupId).includes('welcome back'));
  expect(a2.client.drops.get('group_epoch_gap')).toBe(0);
});

test('a member that missed commits for good asks the committer and is re-added automatically', async () => {
  const { group, aStore, others, b, c } = await threeCommitsWithoutA(true);
  const a2 = await world.start(aStore);
  await b.client.sendToGroup(group.groupId, 'this one a cannot read');
  await until(() => a2.client.drops.get('group_epoch_gap') > 0, 30_000, 'gap detected');
  await until(() => a2.events.some((ev) => ev.kind === 'rejoined'), 30_000, 'rejoined');
  // The Welcome answered a's open request (§9 v2), which its acceptance cleared.
  const meta = JSON.parse((await aStore.getGroup(group.groupId))!.meta) as Record<string, unknown>;
  expect(meta.rejoinRequest).toBeUndefined();
  await until(() => converged([...others, a2], group.groupId), 30_000, 'convergence');
  await c.client.sendToGroup(group.groupId, 'readable again');
  await until(() => groupTexts(a2, group.groupId).includes('readable again'));
  expect((await others[0]!.client.group(group.groupId))!.members).toHaveLength(6);
});

test('the committer leaves: the next-lowest member commits its Remove and becomes the committer', async () => {
  const [a, b, c] = await Promise.all([1, 2, 3].map(() => world.start()));
  const group = await a!.client.createGroup([b!.client.userId, c!.client.userId]);
  for (const m of [b!, c!]) await until(() => m.events.some((e) => e.kind === 'joined'));
  await a!.client.leaveGroup(group.groupId);
  await until(() => a!.events.some((e) => e.kind === 'left'), 30_000, 'committer left');
  expect(a!.events.find((e) => e.kind === 'left')).toMatchObject({ reason: 'left' });
  await until(() => converged([b!, c!], group.groupId));
  const info = (await b!.client.group(group.groupId))!;
  expect(info.members).toHaveLength(2);
  const committer = info.committer;
  expect([b!.client.userId, c!.client.userId]).toContain(committer);
  expect(committer).not.toBe(a!.client.userId);
  await c!.client.sendToGroup(group.groupId, 'still here');
  await until(() => groupTexts(b!, group.groupId).includes('still here'));
  expect(fromHex(group.groupId)).toHaveLength(32);
});

test('a committer that leaves proposals waiting 7 days is replaced by the next member', async () => {
  // One clock for everyone, so that a week can pass between two steps of the test.
  const clock = new ManualClock(Math.floor(Date.now() / 1000));
  const [a, b, c, d] = await Promise.all([1, 2, 3, 4].map(() => world.start(undefined, { clock })));
  const group = await a!.client.createGroup([b!.client.userId, c!.client.userId, d!.client.userId]);
  for (const m of [b!, c!, d!]) await until(() => m.events.some((e) => e.kind === 'joined'));
  await world.stop(a!); // the committer goes quiet for good
  await c!.client.removeFromGroup(group.groupId, [d!.client.userId]);
  clock.advance(7 * 86_400 + 60);
  // c's housekeeping (it runs at start-up, then every 10 minutes) proposes a's Remove.
  const cStore = c!.store;
  await world.stop(c!);
  const c2 = await world.start(cStore, { clock });
  await until(async () => (await b!.client.group(group.groupId))?.members.length === 2, 30_000, 'hand-over');
  const info = (await b!.client.group(group.groupId))!;
  expect(info.members.map((m) => m.userId).sort()).toEqual([b!.client.userId, c2.client.userId].sort());
  expect(info.committer).not.toBe(a!.client.userId);
  await until(() => converged([b!, c2], group.groupId));
  await b!.client.sendToGroup(group.groupId, 'new committer');
  await until(() => groupTexts(c2, group.groupId).includes('new committer'));
});

test('a membership change asked for in a handler is committed with the message and survives a restart', async () => {
  const botStore = await world.durableStore();
  const bot = await world.start(botStore, { bundleFetchTimeoutMs: 300 });
  bot.client.setMessageHandler((m, reply, tx) => {
    const invite = /^\/invite ([0-9a-f]{32})$/.exec(m.content.content);
    if (!invite || m.conversation.kind !== 'group') return;
    tx.groupChange!(m.conversation.groupId, { kind: 'add', userIds: [invite[1]!] });
    reply('inviting');
  });
  const a = await world.start();
  const group = await bot.client.createGroup([a.client.userId]);
  await until(() => a.events.some((e) => e.kind === 'joined'));
  // x exists but has never been online: its bundle is not on the broker, so the add cannot happen yet.
  const xStore = new MemoryRelayStore();
  const xIdentity = generateIdentity();
  await xStore.saveIdentity({ ...xIdentity, createdAt: asUnixSeconds(Math.floor(Date.now() / 1000)) });
  const xId = userIdToHex(xIdentity.userId);
  await a.client.sendToGroup(group.groupId, `/invite ${xId}`);
  await until(() => groupTexts(a, group.groupId).includes('inviting'));
  await until(
    async () => (await botStore.getGroup(group.groupId))!.meta.includes(xId),
    10_000,
    'intent stored',
  );
  await world.stop(bot);
  const x = await world.start(xStore);
  // The restarted bot carries out what it committed before.
  const bot2 = await world.start(botStore);
  await until(
    () => x.events.some((e) => e.kind === 'joined' && e.groupId === group.groupId),
    30_000,
    'x joined',
  );
  await until(() => converged([bot2, a, x], group.groupId));
  await until(
    async () => !(await botStore.getGroup(group.groupId))!.meta.includes(xId),
    10_000,
    'intent cleared',
  );
});
