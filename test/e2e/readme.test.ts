/**
 * The bot, the harness use and the relay-layer example shown in README.md, kept honest by running
 * them; they import from the package's entry points, as the README does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  Bot,
  createRelayClient,
  createRelayStore,
  OnCommand,
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
