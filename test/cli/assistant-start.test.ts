/**
 * The assistant bot as a user runs it (issue #14): `relay-bot start --config` on config/assistant.yaml's
 * settings with the fake model server, in a group of the bot and two people. A mention gets a streamed
 * answer: the second member sees the parts arrive (`stream`, seq 0, 1, …, each adding text) and then one
 * final text with the same id that is the whole answer.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import type { StreamContent } from '../../framework/relay/index.js';
import { startBot, tempDir, ROOT, type RunningBot } from './helpers.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';
import { FakeModelServer } from '../support/fake-model-server.js';
import { GroupWorld, GROUP_TEST_POW_BITS, until } from '../support/groups.js';

let broker: TestBroker;
let server: FakeModelServer;

beforeAll(async () => {
  broker = await getTestBroker();
  server = await FakeModelServer.start();
});

afterAll(async () => {
  await server?.close();
  await broker?.close();
});

test('relay-bot start --config: a group question is answered in parts, then one final text', async () => {
  const tmp = await tempDir('relay-assistant-');
  const world = new GroupWorld(broker.url);
  let bot: RunningBot | undefined;
  try {
    // The shipped config, pointed at this test's broker and a fresh SQLite file.
    const shipped = parse(await readFile(path.join(ROOT, 'config', 'assistant.yaml'), 'utf8')) as Record<
      string,
      Record<string, unknown>
    >;
    const config = {
      ...shipped,
      bot: { ...shipped.bot, module: path.join(ROOT, 'bots', 'assistant', 'index.ts') },
      database: { sqlitePath: path.join(tmp.dir, 'assistant.sqlite') },
      client: { database: { sqlitePath: path.join(tmp.dir, 'cli.sqlite') } },
      broker: { url: broker.url },
      topicPrefix: world.prefix,
      powBits: GROUP_TEST_POW_BITS,
    };
    const file = path.join(tmp.dir, 'assistant.yaml');
    await writeFile(file, stringify(config));
    bot = await startBot(['--config', file], {
      cwd: tmp.dir,
      env: { RELAY_ASSISTANT_URL: server.baseUrl, RELAY_ASSISTANT_MODEL: 'fake' },
    });
    const botId = bot.userId;

    const alice = await world.start();
    const bob = await world.start();
    const { groupId } = await alice.client.createGroup([botId, bob.client.userId], { name: 'crew' });
    await until(() => bob.events.some((e) => e.kind === 'joined'), 30_000, 'bob to join');
    const fromBot = () =>
      bob.messages.filter(
        (m) => m.from === botId && m.conversation.kind === 'group' && m.content.type !== 'typing',
      );
    const texts = () => fromBot().filter((m) => m.content.type === 'text').length;
    // A message sent before the bot took its Welcome never reaches it: probe until one is answered
    // (nothing scripted, so the fake server fails them and the bot says so), then until every probe
    // that reached the model has its answer, so none takes the scripted answer below.
    for (let i = 0; texts() === 0; i++) {
      if (i === 20) throw new Error('the bot never answered a probe in the group');
      await alice.client.sendToGroup(groupId, `@assistant probe ${i}`);
      await until(() => texts() > 0, 3_000, 'a probe answered').catch(() => undefined);
    }
    await until(() => texts() === server.requests.length, 30_000, 'every probe answered');
    const before = fromBot().length;

    // Chunks 400 ms apart: the bot sends at most 4 parts a second, so several parts go out.
    const chunks = ['MLS ', 'is a ', 'group ', 'key ', 'agreement ', 'protocol.'];
    server.reply({ kind: 'answer', chunks, delayMs: 400 });
    const { id: questionId } = await alice.client.sendToGroup(groupId, '@assistant what is MLS?');
    const answer = () => fromBot().slice(before);
    await until(() => answer().some((m) => m.content.type === 'text'), 60_000, 'the final answer');

    const parts = answer().filter((m) => m.content.type === 'stream') as Array<{ content: StreamContent }>;
    const final = answer().find((m) => m.content.type === 'text')!;
    expect(parts.length).toBeGreaterThanOrEqual(2);
    expect(parts.map((p) => p.content.seq)).toEqual(parts.map((_, i) => i));
    expect(new Set(parts.map((p) => p.content.id))).toEqual(new Set([final.content.id]));
    // Each part adds text; the final supersedes them, so it may carry text no part did yet.
    expect(chunks.join('').startsWith(parts.map((p) => p.content.content).join(''))).toBe(true);
    expect(final.content.content).toBe(chunks.join(''));
    expect(final.content.replyTo ?? parts[0]!.content.replyTo).toBe(questionId);
    // The final text is the last thing the bot said about it.
    expect(answer().indexOf(final)).toBe(answer().length - 1);
    // The model got the question without the mention, after the system prompt.
    const last = server.requests.at(-1)!.body?.messages as Array<{ role: string; content: string }>;
    expect(last[0]!.role).toBe('system');
    expect(last.at(-1)).toEqual({ role: 'user', content: 'what is MLS?' });
  } finally {
    await bot?.stop('SIGTERM');
    await world.close();
    await tmp.remove();
  }
}, 240_000);
