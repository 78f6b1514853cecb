/** Plugins end to end: rate limit across a restart, access lists, ping and help, on a real broker. */
import { Bot, OnCommand, type BotRuntime } from '../../framework/bot/index.js';
import { createTestHarness, type TestHarness, type TestPeer } from '../../framework/testing/index.js';
import { accessPlugin, helpPlugin, PingPlugin, rateLimit, rateLimitKey } from '../../plugins/index.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';

@Bot({ name: 'guarded', description: 'plugin host' })
class GuardedBot {
  @OnCommand('hi', { description: 'says hi' })
  hi(): string {
    return 'hi';
  }

  @OnCommand('shutdown', { guard: 'admin', description: 'admins only' })
  shutdown(): string {
    return 'shutting down (not really)';
  }
}

let broker: TestBroker;
const harnesses: TestHarness[] = [];

beforeAll(async () => {
  broker = await getTestBroker();
});

afterAll(async () => {
  for (const h of harnesses.splice(0)) await h.close();
  await broker?.close();
});

async function harness(
  bot: object | (new () => object),
  setup: (rt: BotRuntime) => void,
  runtimeOptions = {},
): Promise<TestHarness> {
  const h = await createTestHarness(bot, { brokerUrl: broker.url, setup, runtimeOptions });
  harnesses.push(h);
  return h;
}

async function ask(p: TestPeer, text: string): Promise<string> {
  await p.send(text);
  return (await p.nextReply()).content;
}

test('rate limit: the bucket is committed with each message and holds across a restart', async () => {
  let now = 1_700_000_000_000;
  const h = await harness(
    GuardedBot,
    (rt) => {
      rt.use(rateLimit({ capacity: 2, refillPerSecond: 1, clock: () => now }));
    },
    { guards: { admin: () => false } },
  );
  const alice = await h.peer();
  const bob = await h.peer();
  expect(await ask(alice, '/hi')).toBe('hi');
  expect(await ask(alice, '/hi')).toBe('hi');
  expect(await ask(alice, '/hi')).toBe('slow down: try again in 1 s');
  // Another sender has a bucket of their own.
  expect(await ask(bob, '/hi')).toBe('hi');
  await h.restart();
  // Still empty after the restart: refused again, silently this time (one refusal per empty spell).
  const refused = await alice.send('/hi');
  await h.processed(refused.id);
  now += 1000;
  expect(await ask(alice, '/hi')).toBe('hi');
  expect(alice.replies.map((r) => r.content)).toEqual(['hi', 'hi', 'slow down: try again in 1 s', 'hi']);
  const stored = await h.bot.store.getConversationData(rateLimitKey('guarded', alice.userId));
  expect(JSON.parse(stored!)).toEqual({ tokens: 0, at: now, refused: false });
});

test('access: strangers are ignored, allowed users served, admins pass the admin guard', async () => {
  const config: { allow: string[]; admins: string[] } = { allow: [], admins: [] };
  const h = await harness(GuardedBot, (rt) => rt.use(accessPlugin(config)), {
    guards: { admin: (ctx: { sender: string }) => config.admins.includes(ctx.sender) },
  });
  const alice = await h.peer();
  const admin = await h.peer();
  const stranger = await h.peer();
  // The configuration names the peers' ids, so the bot restarts with it, as after a config change.
  config.allow = [alice.userId.toUpperCase()];
  config.admins = [admin.userId];
  await h.restart();
  const ignored = await stranger.send('/hi');
  const ignoredUnknown = await stranger.send('/nope');
  expect(await ask(alice, '/hi')).toBe('hi');
  expect(await ask(alice, '/shutdown')).toBe('you are not allowed to use /shutdown');
  expect(await ask(admin, '/shutdown')).toBe('shutting down (not really)');
  await h.processed(ignored.id);
  await h.processed(ignoredUnknown.id);
  // Both were committed before alice's and the admin's later replies went out; none was answered.
  expect(await ask(alice, '/hi')).toBe('hi');
  expect(stranger.replies).toEqual([]);
});

test('the admin guard from accessPlugin itself', async () => {
  const ids: { admins: string[] } = { admins: [] };
  let access = accessPlugin(ids);
  const h = await harness(
    GuardedBot,
    (rt) => rt.use(access),
    // Reads the current plugin, so a new admin list applies to the next message.
    { guards: { admin: (ctx: Parameters<typeof access.guards.admin>[0]) => access.guards.admin(ctx) } },
  );
  const admin = await h.peer();
  expect(await ask(admin, '/shutdown')).toBe('you are not allowed to use /shutdown');
  access = accessPlugin({ admins: [admin.userId] });
  expect(await ask(admin, '/shutdown')).toBe('shutting down (not really)');
});

test('ping plugin and help plugin next to a bot', async () => {
  @Bot({ name: 'pinged' })
  class Pinged {
    @OnCommand('hi')
    hi(): string {
      return 'hi';
    }
  }
  const h = await harness(
    [new Pinged(), new PingPlugin()],
    (rt) => rt.use(helpPlugin({ footer: 'that is all' })),
    {
      help: false,
    },
  );
  const alice = await h.peer();
  expect(await ask(alice, '/ping')).toBe('pong');
  expect(await ask(alice, '/uptime')).toMatch(/^up (\d+[dhm] )*\d+s$/);
  const help = (await ask(alice, '/help')).split('\n');
  expect(help).toEqual([
    'pinged',
    '/hi',
    '/ping — answers pong',
    '/uptime — how long the bot has been running',
    '/help [command] — this list; /help <command> shows how to use one',
    'that is all',
  ]);
  expect(await ask(alice, '/help uptime')).toBe('usage: /uptime\nhow long the bot has been running');
});
