/**
 * The assistant bot through the real runtime and broker, with the fake model server: the refusal
 * without a server, a model failure answered with its sentence, and in a group the mention rule
 * (chatter ignored, a mention answered with reply_to). The streamed answer, through `relay-bot start`,
 * is test/cli/assistant-start.test.ts.
 */
import { AssistantBot, NOT_CONFIGURED } from '../../bots/assistant/index.js';
import { createTestHarness, type TestHarness } from '../../framework/testing/index.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';
import { FakeModelServer } from '../support/fake-model-server.js';

let broker: TestBroker;
let server: FakeModelServer;
const harnesses: TestHarness[] = [];

beforeAll(async () => {
  broker = await getTestBroker();
  server = await FakeModelServer.start();
});

afterAll(async () => {
  for (const h of harnesses.splice(0)) await h.close();
  await server?.close();
  await broker?.close();
});

async function harness(bot: AssistantBot): Promise<TestHarness> {
  const h = await createTestHarness(bot, { brokerUrl: broker.url });
  harnesses.push(h);
  return h;
}

const withServer = (): AssistantBot =>
  new AssistantBot(
    { systemPrompt: 'Be brief.' },
    { env: { RELAY_ASSISTANT_URL: server.baseUrl, RELAY_ASSISTANT_MODEL: 'fake' } },
  );

test('without a model server, a question and /ask get the refusal', async () => {
  const h = await harness(new AssistantBot({}, { env: {} }));
  const alice = await h.peer();
  await alice.send('what is MLS?');
  expect((await alice.nextReply()).content).toBe(NOT_CONFIGURED);
  await alice.send('/ask what is MLS?');
  expect((await alice.nextReply()).content).toBe(NOT_CONFIGURED);
});

test('a rate-limited model server is one short reply; the question reached it with the system prompt', async () => {
  const h = await harness(withServer());
  const alice = await h.peer();
  server.reply({ kind: 'status', status: 429 });
  await alice.send('/ask hello?');
  expect((await alice.nextReply()).content).toBe(
    'the model server is busy (rate limited); try again in a minute',
  );
  expect(server.requests.map((r) => r.body?.messages)).toEqual([
    [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'hello?' },
    ],
  ]);
  server.reset();
});

test('in a group, chatter is ignored and a mention is answered with reply_to', async () => {
  const h = await harness(withServer());
  const alice = await h.peer();
  const { groupId } = await alice.createGroup({ name: 'crew' });
  // The bot is in the group once its runtime lists it.
  for (;;) {
    if ((await h.bot.runtime.groups()).some((g) => g.groupId === groupId)) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  server.reply({ kind: 'status', status: 500 });
  await alice.sendToGroup(groupId, 'lunch at noon?');
  const mention = await alice.sendToGroup(groupId, '@assistant is noon too early?');
  const answer = await alice.groupReplyTo(groupId, mention.id);
  expect(answer.content).toBe('the model server failed; try again later');
  // Only the mention reached the model, without the mention itself; the chatter got no answer.
  expect(
    server.requests.map((r) => (r.body?.messages as Array<{ content: string }>).at(-1)?.content),
  ).toEqual(['is noon too early?']);
  expect(alice.groupMessages(groupId).filter((m) => m.from === h.bot.userId)).toHaveLength(1);
  server.reset();
});
