/**
 * The agent API end to end, through the real broker: a bot streams replies in 1:1 and in a group
 * (a receiving client sees the parts in seq order, then one final text with the same id), reacts,
 * edits, deletes and offers actions whose choice reaches @OnAction; and a bot process killed with
 * SIGKILL mid-stream ends that stream, once restarted, with the interrupted final.
 */
import {
  Bot,
  INTERRUPTED_REPLY,
  OnAction,
  OnCommand,
  OnReaction,
  type BotContext,
} from '../../framework/bot/index.js';
import { MemoryRelayStore, RelayClient, type ReceivedMessage } from '../../framework/relay/index.js';
import { createTestHarness, type TestHarness, type TestPeer } from '../../framework/testing/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { kill, onSqlite, sleep, startChild } from '../support/child.js';

async function* slowParts(n: number, ms: number): AsyncIterable<string> {
  for (let i = 0; i < n; i++) {
    await new Promise((r) => setTimeout(r, ms));
    yield `w${i} `;
  }
}

@Bot({ name: 'agent', typing: false })
class AgentBot {
  @OnCommand('stream', { args: '<n:int>' })
  async stream(ctx: BotContext<{ n: number }>): Promise<void> {
    await ctx.typing();
    await ctx.stream(slowParts(ctx.args.n, 120));
  }

  @OnCommand('ask')
  ask(ctx: BotContext): void {
    const first = ctx.reply('draft');
    ctx.edit(first, 'final wording');
    const gone = ctx.reply('to be deleted');
    ctx.delete(gone);
    ctx.react('👀');
    ctx.actions('ship it?', [
      { id: 'yes', label: 'Yes' },
      { id: 'no', label: 'No' },
    ]);
  }

  @OnAction('yes')
  yes(ctx: BotContext): string {
    return `chose ${ctx.action!.id} on ${ctx.action!.messageId}`;
  }

  @OnReaction()
  reacted(ctx: BotContext): string {
    return `reaction ${ctx.reaction!.emoji} on ${ctx.reaction!.messageId}`;
  }
}

let broker: TestBroker;
let h: TestHarness;
let alice: TestPeer;

/** Everything a client received from `from` (in conversations of `kind`), typed, in arrival order. */
function recorder(client: RelayClient, from: () => string, kind?: 'direct' | 'group'): ReceivedMessage[] {
  const got: ReceivedMessage[] = [];
  client.on('message', (m) => {
    if (m.from === from() && (kind === undefined || m.conversation.kind === kind)) got.push(m);
  });
  return got;
}

async function eventually(check: () => boolean, what: () => string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what()}`);
    await sleep(25);
  }
}

const summary = (ms: ReceivedMessage[]): string =>
  JSON.stringify(ms.map((m) => ({ ...m.content })).slice(-12));

/** The stream answering `requestId`: parts in arrival order and the final text. */
function streamOf(ms: ReceivedMessage[], requestId: string) {
  const parts = ms.filter((m) => m.content.type === 'stream' && m.content.replyTo === requestId);
  const streamId = parts[0]?.content.id;
  const final = ms.find(
    (m) => m.content.type === 'text' && streamId !== undefined && m.content.id === streamId,
  );
  return { parts, streamId, final };
}

function expectWellFormedStream(ms: ReceivedMessage[], requestId: string, n: number): void {
  const { parts, streamId, final } = streamOf(ms, requestId);
  expect(parts.length).toBeGreaterThanOrEqual(2);
  expect(parts.every((p) => p.content.id === streamId)).toBe(true);
  const seqs = parts.map((p) => (p.content as { seq: number }).seq);
  expect(seqs).toEqual(seqs.map((_, i) => i));
  const full = Array.from({ length: n }, (_, i) => `w${i} `).join('');
  expect(final!.content.content).toBe(full);
  expect(final!.content.replyTo).toBe(requestId);
  // The parts are a prefix of the final text, and nothing of the stream came after the final.
  expect(full.startsWith(parts.map((p) => p.content.content).join(''))).toBe(true);
  expect(ms.indexOf(final!)).toBeGreaterThan(ms.indexOf(parts[parts.length - 1]!));
}

beforeAll(async () => {
  broker = await getTestBroker();
  h = await createTestHarness(AgentBot, { brokerUrl: broker.url });
  alice = await h.peer();
});

afterAll(async () => {
  await h?.close();
  await broker?.close();
});

test('1:1: typing, then parts in seq order, then one final text with the same id', async () => {
  const got = recorder(alice.client, () => h.bot.userId, 'direct');
  const sent = await alice.send('/stream 12');
  await eventually(
    () => streamOf(got, sent.id).final !== undefined,
    () => summary(got),
  );
  expect(got[0]!.content).toMatchObject({ type: 'typing', state: 'start' });
  expectWellFormedStream(got, sent.id, 12);
  // ≤ 4 parts per second over ~1.4 s of production.
  expect(streamOf(got, sent.id).parts.length).toBeLessThanOrEqual(8);
  // The closing typing stop follows, and the bot's open-reply marker is gone.
  await eventually(
    () => got.some((m) => m.content.type === 'typing' && 'state' in m.content && m.content.state === 'stop'),
    () => summary(got),
  );
  expect(await h.bot.store.listConversationData('replies:agent:')).toEqual([]);
});

test('a group: another member sees the parts in seq order and one final text', async () => {
  const bob = await h.peer();
  const group = await alice.createGroup({ members: [h.bot.userId, bob.userId], name: 'agents' });
  await bob.waitForGroup(group.groupId);
  const seenByBob = recorder(bob.client, () => h.bot.userId, 'group');
  // The bot joins through the invitation; a message before that would not reach it.
  const deadline = Date.now() + 30_000;
  while (!(await h.bot.runtime.groups()).some((g) => g.groupId === group.groupId)) {
    if (Date.now() > deadline) throw new Error('the bot did not join the group');
    await sleep(50);
  }
  const sent = await alice.sendToGroup(group.groupId, '/stream 8');
  await eventually(
    () => streamOf(seenByBob, sent.id).final !== undefined,
    () => summary(seenByBob),
  );
  expectWellFormedStream(seenByBob, sent.id, 8);
  expect(seenByBob.every((m) => m.conversation.kind === 'group')).toBe(true);
});

test('react, edit, delete and actions round trips; a choice and a reaction reach their handlers', async () => {
  const got = recorder(alice.client, () => h.bot.userId, 'direct');
  const sent = await alice.send('/ask');
  await eventually(
    () => got.some((m) => m.content.type === 'actions'),
    () => summary(got),
  );
  const [draft, edit, doomed, del, reaction, actions] = got.map((m) => m.content);
  expect(draft).toMatchObject({ type: 'text', content: 'draft', replyTo: sent.id });
  expect(edit).toMatchObject({ type: 'edit', content: 'final wording', replyTo: draft!.id });
  expect(doomed).toMatchObject({ type: 'text', content: 'to be deleted' });
  expect(del).toMatchObject({ type: 'delete', replyTo: doomed!.id });
  expect(reaction).toMatchObject({ type: 'reaction', content: '👀', replyTo: sent.id });
  expect(actions).toMatchObject({
    type: 'actions',
    content: 'ship it?',
    actions: [
      { id: 'yes', label: 'Yes' },
      { id: 'no', label: 'No' },
    ],
  });
  await alice.client.send(h.bot.userId, { type: 'action', content: 'yes', replyTo: actions!.id! });
  await alice.client.send(h.bot.userId, { type: 'reaction', content: '🎉', replyTo: draft!.id! });
  await eventually(
    () => got.length >= 8,
    () => summary(got),
  );
  expect(got.slice(6).map((m) => m.content.content)).toEqual([
    `chose yes on ${actions!.id}`,
    `reaction 🎉 on ${draft!.id}`,
  ]);
});

test('SIGKILL mid-stream: after the restart the stream ends with the interrupted final', async () => {
  await onSqlite(async (env) => {
    const prefix = uniqueName('agent');
    const childEnv = { ...env, RELAY_BROKER_URL: broker.url, RELAY_PREFIX: prefix };
    let child = await startChild('agent-child.ts', childEnv);
    const botId = child.userId;
    const peer = await RelayClient.create({
      store: new MemoryRelayStore(),
      broker: { url: broker.url },
      topicPrefix: prefix,
      powBits: 8,
    });
    const got = recorder(peer, () => botId);
    await peer.start();
    try {
      const sent = await peer.send(botId, '/stream 200');
      await eventually(
        () => streamOf(got, sent.id).parts.length >= 3,
        () => summary(got),
      );
      await kill(child);
      const before = streamOf(got, sent.id);
      expect(before.final).toBeUndefined();
      child = await startChild('agent-child.ts', childEnv);
      await eventually(
        () => streamOf(got, sent.id).final !== undefined,
        () => summary(got),
      );
      const after = streamOf(got, sent.id);
      expect(after.final!.content).toMatchObject({
        type: 'text',
        content: INTERRUPTED_REPLY,
        replyTo: sent.id,
      });
      const seqs = after.parts.map((p) => (p.content as { seq: number }).seq);
      expect(seqs).toEqual(seqs.map((_, i) => i));
      // No decryption failure (a reused generation fails MLS) and nothing refused as content.
      expect(peer.drops.get('mls')).toBe(0);
      expect(peer.drops.get('content')).toBe(0);
      // The stream is not run again: nothing of it comes after the final.
      await sleep(1000);
      expect(got.indexOf(after.final!)).toBe(got.length - 1);
    } finally {
      await kill(child);
      await peer.stop();
    }
  });
});
