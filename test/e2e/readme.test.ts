/**
 * The bot, the harness use and the relay-layer example shown in README.md, kept honest by running
 * them; they import from the package's entry points, as the README does. The agent example of
 * "Writing your own agent" is taken from README.md itself and run as written.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import {
  Bot,
  createRelayClient,
  createRelayStore,
  OnCommand,
  STREAM_FAILED_NOTE,
  type BotContext,
  type ReceivedMessage,
  type RelayClient,
} from 'relay-bot';
import { createTestHarness } from 'relay-bot/testing';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';

@Bot({ name: 'weather', description: 'Forecasts, end-to-end encrypted' })
class WeatherBot {
  @OnCommand('weather', { args: '<city> [days:int=1]', description: 'forecast for a city' })
  weather(ctx: BotContext<{ city: string; days: number }>) {
    ctx.reply(`${ctx.args.city}: sunny for ${ctx.args.days} day(s)`);
  }
}

let broker: TestBroker;
beforeAll(async () => {
  broker = await getTestBroker();
});
afterAll(async () => {
  await broker.close();
});

test('the README weather bot answers through the harness', async () => {
  const h = await createTestHarness(WeatherBot, { brokerUrl: broker.url });
  try {
    const alice = await h.peer();
    await alice.send('/weather Oslo 2');
    expect((await alice.nextReply()).content).toBe('Oslo: sunny for 2 day(s)');
    await alice.send('/weather Bergen');
    expect((await alice.nextReply()).content).toBe('Bergen: sunny for 1 day(s)');
  } finally {
    await h.close();
  }
});

test('the README relay-layer example: createRelayStore, createRelayClient, first contact', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'relay-readme-'));
  const topicPrefix = uniqueName('readme');
  const clients: RelayClient[] = [];
  const stores: Array<{ close(): Promise<void> }> = [];
  try {
    const open = async (name: string) => {
      const store = await createRelayStore({ sqlitePath: path.join(dir, `${name}.sqlite`) });
      stores.push(store);
      const client = await createRelayClient({ store, broker: broker.url, topicPrefix, powBits: 8 });
      clients.push(client);
      await client.start();
      return client;
    };
    const alice = await open('alice');
    const bob = await open('bob');
    const atBob = new Promise<ReceivedMessage>((resolve) => bob.once('message', resolve));
    await alice.send(bob.userId, 'hello bob');
    const got = await atBob;
    expect(got.from).toBe(alice.userId);
    expect(got.content.content).toBe('hello bob');
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
    // close() also closes the database connection createRelayStore opened.
    await Promise.all(stores.map((s) => s.close()));
    await rm(dir, { recursive: true, force: true });
  }
});

const README = readFileSync(
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../README.md'),
  'utf8',
);

/** The first ```ts block under a `### heading` of README.md. */
function tsBlockUnder(heading: string): string {
  const at = README.indexOf(`\n### ${heading}\n`);
  if (at < 0) throw new Error(`README has no "### ${heading}" section`);
  const body = /```ts\n([\s\S]*?)```/.exec(README.slice(at))?.[1];
  if (body === undefined) throw new Error(`README "${heading}" has no ts block`);
  return body;
}

/**
 * The README's code as a module: compiled with the repository's decorator settings (as a bot
 * author's tsconfig has them) and imported, so `relay-bot` resolves to this checkout like the
 * imports above.
 */
async function importReadmeModule(code: string, dir: string): Promise<Record<string, unknown>> {
  const js = ts.transpileModule(code, {
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ES2022,
      experimentalDecorators: true,
      emitDecoratorMetadata: true,
    },
  }).outputText;
  const file = path.join(dir, 'agent.mjs');
  await writeFile(file, js);
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}

test('the README agent example streams its poem in parts, then one final text', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'relay-readme-agent-'));
  try {
    const exported = await importReadmeModule(tsBlockUnder('Writing your own agent'), dir);
    const [name, AgentClass] = Object.entries(exported)[0] ?? [];
    expect(name).toBe('PoetBot');
    const h = await createTestHarness(AgentClass as new () => object, { brokerUrl: broker.url });
    try {
      const alice = await h.peer();
      const got: ReceivedMessage[] = [];
      alice.client.on('message', (m) => {
        if (m.from === h.bot.userId) got.push(m);
      });
      const sent = await alice.send('/poem the sea');
      const deadline = Date.now() + 30_000;
      const final = () => got.find((m) => m.content.type === 'text' && m.content.replyTo === sent.id);
      while (final() === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const poem = 'Of the sea I sing,\nslowly, in parts,\nand then all at once.';
      expect(final()?.content.content).toBe(poem);
      expect(final()!.content.content).not.toContain(STREAM_FAILED_NOTE);
      // "typing…" first, then the parts in order (each a prefix of the poem), then the final
      // with the stream's id, which supersedes them.
      expect(got[0]!.content).toMatchObject({ type: 'typing', state: 'start' });
      const parts = got.filter((m) => m.content.type === 'stream');
      expect(parts.length).toBeGreaterThanOrEqual(2);
      expect(parts.map((p) => (p.content as { seq: number }).seq)).toEqual(parts.map((_, i) => i));
      expect(poem.startsWith(parts.map((p) => p.content.content).join(''))).toBe(true);
      expect(parts.every((p) => p.content.id === final()!.content.id)).toBe(true);
    } finally {
      await h.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
