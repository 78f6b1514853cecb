/**
 * Every PROTOCOL.md §8 content type through the relay layer and a real broker (Mosquitto when it
 * answers), both ways, in a 1:1 session and in a group: what one client sends, the other receives as
 * the same typed content. One side of each conversation keeps its state in Postgres when it answers.
 */
import { createHash } from 'node:crypto';
import {
  decodeContent,
  encodeContent,
  type AppContent,
  type ContentInput,
  type ReceivedMessage,
} from '../../framework/relay/index.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';
import { GroupWorld, until, type Member } from '../support/groups.js';

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

const file = new TextEncoder().encode('a small file\n');

/**
 * One of each §8 type (and an unknown one), as `tag` would send them after its own text `${tag}-t`
 * and the other side's text `otherText`.
 */
function everyType(tag: string, otherText: string): ContentInput[] {
  return [
    { type: 'reaction', replyTo: otherText, content: '👍' },
    { type: 'reaction', replyTo: otherText, content: '👍', remove: true },
    { type: 'edit', replyTo: `${tag}-t`, content: 'hello, edited' },
    { type: 'typing', state: 'start', content: '' },
    { type: 'stream', id: `${tag}-s`, seq: 0, content: 'The answer ' },
    { type: 'stream', id: `${tag}-s`, seq: 1, content: 'is 42.', done: true },
    { type: 'text', id: `${tag}-s`, content: 'The answer is 42.' },
    { type: 'typing', state: 'stop', content: '' },
    {
      type: 'task',
      id: `${tag}-task`,
      replyTo: otherText,
      state: 'working',
      content: 'on it',
      progress: 0.5,
    },
    { type: 'task', id: `${tag}-task`, replyTo: otherText, state: 'completed', content: 'done' },
    { type: 'task-cancel', replyTo: `${tag}-task`, content: '' },
    {
      type: 'actions',
      id: `${tag}-a`,
      content: 'Pick one',
      actions: [
        { id: 'yes', label: 'Yes' },
        { id: 'no', label: 'No' },
      ],
    },
    { type: 'action', replyTo: `${tag}-a`, content: 'yes' },
    {
      type: 'attachment',
      name: 'notes.txt',
      mime: 'text/plain',
      size: file.length,
      sha256: createHash('sha256').update(file).digest('hex'),
      source: { kind: 'inline', data: file },
      content: 'a file',
    },
    {
      type: 'attachment',
      name: 'big.bin',
      mime: 'application/octet-stream',
      size: 1_000_000,
      sha256: 'ab'.repeat(32),
      source: {
        kind: 'url',
        url: 'https://files.example/x',
        key: new Uint8Array(32).fill(7),
        nonce: new Uint8Array(12).fill(9),
      },
      content: '',
    },
    { type: 'delete', replyTo: `${tag}-t`, content: 'deleted' },
    { type: 'x-poll', content: 'Vote: tea or coffee?' },
  ];
}

/** What a receiver reads of content sent under `id`: the codec's own round trip. */
const asReceived = (c: ContentInput, id: string): AppContent => decodeContent(encodeContent({ ...c, id }));

const contentsFrom = (m: Member, from: string, groupId?: string): AppContent[] =>
  m.messages
    .filter(
      (x: ReceivedMessage) =>
        x.from === from && (groupId === undefined || x.conversation.groupId === groupId),
    )
    .map((x) => x.content);

const CHECK_DROPS = ['content', 'content_sender', 'content_unknown_target', 'mls'] as const;

function expectNoContentDrops(...members: Member[]): void {
  for (const m of members)
    for (const r of CHECK_DROPS) expect(`${r}=${m.client.drops.get(r)}`).toBe(`${r}=0`);
}

test('1:1: each §8 type both ways arrives as the typed content that was sent', async () => {
  const alice = await world.start(await world.durableStore());
  const bob = await world.start();
  await alice.client.send(bob.client.userId, { content: 'hello', id: 'alice-t' });
  await until(() => bob.messages.length === 1, 30_000, 'first contact');
  await bob.client.send(alice.client.userId, { content: 'hello', id: 'bob-t' });
  await until(() => alice.messages.length === 1, 30_000, 'the answer');

  const expected = new Map<Member, AppContent[]>([
    [alice, [asReceived({ content: 'hello' }, 'alice-t')]],
    [bob, [asReceived({ content: 'hello' }, 'bob-t')]],
  ]);
  for (const [sender, receiver, tag, other] of [
    [alice, bob, 'alice', 'bob-t'],
    [bob, alice, 'bob', 'alice-t'],
  ] as const) {
    for (const c of everyType(tag, other)) {
      const { id } = await sender.client.send(receiver.client.userId, c);
      expected.get(sender)!.push(asReceived(c, id));
    }
  }
  for (const [sender, receiver] of [
    [alice, bob],
    [bob, alice],
  ] as const) {
    const want = expected.get(sender)!;
    await until(
      () => contentsFrom(receiver, sender.client.userId).length >= want.length,
      30_000,
      'every type',
    );
    expect(contentsFrom(receiver, sender.client.userId)).toEqual(want);
  }
  // Typed all the way: a switch on `type` sees each type's own fields.
  const stream = bob.messages.find(
    (m) => m.content.type === 'stream' && 'seq' in m.content && m.content.seq === 1,
  )!;
  expect(stream.content).toMatchObject({ id: 'alice-s', seq: 1, done: true, content: 'is 42.' });
  const unknown = bob.messages.find((m) => m.content.type === 'x-poll')!;
  expect(unknown.content.content).toBe('Vote: tea or coffee?');
  expectNoContentDrops(alice, bob);
});

test('groups: each §8 type from two members arrives at the others as the typed content that was sent', async () => {
  const owner = await world.start(await world.durableStore());
  const [b, c] = await Promise.all([world.start(), world.start()]);
  const group = await owner.client.createGroup([b.client.userId, c.client.userId]);
  for (const m of [b, c]) await until(() => m.events.some((e) => e.kind === 'joined'), 30_000, 'joined');

  const expected = new Map<Member, AppContent[]>();
  for (const [sender, tag] of [
    [owner, 'owner'],
    [b, 'b'],
  ] as const) {
    const own: AppContent[] = [];
    expected.set(sender, own);
    const first = await sender.client.sendToGroup(group.groupId, { content: 'hello', id: `${tag}-t` });
    own.push(asReceived({ content: 'hello' }, first.id));
  }
  for (const [sender, tag, other] of [
    [owner, 'owner', 'b-t'],
    [b, 'b', 'owner-t'],
  ] as const) {
    for (const x of everyType(tag, other)) {
      const { id } = await sender.client.sendToGroup(group.groupId, x);
      expected.get(sender)!.push(asReceived(x, id));
    }
  }
  for (const [sender, receivers] of [
    [owner, [b, c]],
    [b, [owner, c]],
  ] as const) {
    const want = expected.get(sender)!;
    for (const r of receivers) {
      const got = () => contentsFrom(r, sender.client.userId, group.groupId);
      await until(() => got().length >= want.length, 30_000, 'every type in the group');
      expect(got()).toEqual(want);
    }
  }
  expectNoContentDrops(owner, b, c);
});

test('both sides initiating at once: the side that loses the race re-sends its messages whole, type and id', async () => {
  const alice = await world.start(await world.durableStore());
  const bob = await world.start();
  const sent = new Map<Member, AppContent[]>();
  const sendAll = async (from: Member, to: Member, tag: string) => {
    const list: ContentInput[] = [
      { type: 'stream', id: `${tag}-s`, seq: 0, content: 'thinking… ' },
      { type: 'task', id: `${tag}-task`, replyTo: 'x', state: 'submitted', content: 'queued' },
      { type: 'text', id: `${tag}-s`, content: 'thinking… done' },
    ];
    const out: AppContent[] = [];
    sent.set(from, out);
    for (const c of list) out.push(asReceived(c, (await from.client.send(to.client.userId, c)).id));
  };
  await Promise.all([sendAll(alice, bob, 'alice'), sendAll(bob, alice, 'bob')]);
  // There was a race: one side's Welcome lost to the other's session.
  expect(alice.client.drops.get('welcome_superseded') + bob.client.drops.get('welcome_superseded')).toBe(1);
  for (const [sender, receiver] of [
    [alice, bob],
    [bob, alice],
  ] as const) {
    const want = sent.get(sender)!;
    await until(
      () => contentsFrom(receiver, sender.client.userId).length >= want.length,
      30_000,
      'the re-sent',
    );
    // A re-sent message may come after ones sent later (the re-send is queued behind them): §8
    // orders stream parts by `seq`, so only the contents themselves count here.
    const sorted = (list: AppContent[]) => list.map((c) => JSON.stringify(c)).sort();
    expect(sorted(contentsFrom(receiver, sender.client.userId))).toEqual(sorted(want));
  }
  const [a, b] = [
    await alice.client.sessionWith(bob.client.userId),
    await bob.client.sessionWith(alice.client.userId),
  ];
  expect(a?.groupId).toBe(b?.groupId);
  expectNoContentDrops(alice, bob);
});
