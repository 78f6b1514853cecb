/** Plugins in isolation: BotRuntime.handle() with an in-memory transaction (MemoryDataStore). */
import {
  Bot,
  BotRuntime,
  MemoryDataStore,
  OnCommand,
  OnJoin,
  type BotContext,
  type MembershipContext,
} from '../../framework/bot/index.js';
import type { UserIdHex } from '../../framework/relay/brand.js';
import { ConfigError } from '../../framework/relay/errors.js';
import {
  accessPlugin,
  formatDuration,
  helpPlugin,
  PingPlugin,
  rateLimit,
  rateLimitKey,
} from '../../plugins/index.js';
import { ALICE, CAROL, collector, textMessage, type Collector } from './helpers.js';

@Bot({ name: 'Plugged', description: 'for plugin tests' })
class Plugged {
  @OnCommand('hi', { description: 'says hi' })
  hi(): string {
    return 'hi';
  }

  @OnCommand('ban', { guard: 'admin', args: '<who:user>', description: 'bans' })
  ban(ctx: BotContext<{ who: string }>): string {
    return `banned ${ctx.args.who}`;
  }
}

const guards = { admin: () => true };
const plugged = (options: ConstructorParameters<typeof BotRuntime>[1] = {}): BotRuntime =>
  new BotRuntime(new Plugged(), { guards, ...options });

async function say(
  rt: BotRuntime,
  data: MemoryDataStore,
  text: string,
  from: UserIdHex = ALICE,
): Promise<Collector> {
  const c = collector();
  await rt.handle(textMessage(text, { from, id: null }), c.reply, c.deps, data.transaction());
  return c;
}

describe('rate limit', () => {
  test('a bucket per sender: capacity, one refusal, refill by the clock, kept in the transaction', async () => {
    let now = 1_000_000;
    const data = new MemoryDataStore();
    const rt = plugged().use(rateLimit({ capacity: 2, refillPerSecond: 0.5, clock: () => now }));
    expect((await say(rt, data, '/hi')).texts()).toEqual(['hi']);
    expect((await say(rt, data, '/hi')).texts()).toEqual(['hi']);
    expect((await say(rt, data, '/hi')).texts()).toEqual(['slow down: try again in 2 s']);
    expect((await say(rt, data, '/hi')).texts()).toEqual([]);
    expect((await say(rt, data, '/hi', CAROL as UserIdHex)).texts()).toEqual(['hi']);
    now += 2000;
    expect((await say(rt, data, '/hi')).texts()).toEqual(['hi']);
    expect((await say(rt, data, '/hi')).texts()).toEqual(['slow down: try again in 2 s']);
    expect(JSON.parse(data.get(rateLimitKey('Plugged', ALICE))!)).toMatchObject({ refused: true });
    // A new runtime (a restart) on the same data sees the same bucket.
    const again = plugged().use(
      rateLimit({ capacity: 2, refillPerSecond: 0.5, clock: () => now, reply: (s) => `wait ${s}` }),
    );
    expect((await say(again, data, '/hi')).texts()).toEqual([]);
  });

  test('a clock going backwards refills nothing; bad options are start-up errors', async () => {
    let now = 10_000;
    const data = new MemoryDataStore();
    const rt = plugged().use(rateLimit({ capacity: 1, refillPerSecond: 1, clock: () => now, reply: 'no' }));
    expect((await say(rt, data, '/hi')).texts()).toEqual(['hi']);
    now -= 60_000;
    expect((await say(rt, data, '/hi')).texts()).toEqual(['no']);
    expect(() => rateLimit({ capacity: 0, refillPerSecond: 1 })).toThrow(ConfigError);
    expect(() => rateLimit({ capacity: 1, refillPerSecond: 0 })).toThrow(ConfigError);
    expect(() => rateLimit({ capacity: Number.NaN, refillPerSecond: 1 })).toThrow(ConfigError);
  });

  test('without a transaction the middleware fails loudly instead of limiting nothing', async () => {
    const rt = plugged().use(rateLimit({ capacity: 1, refillPerSecond: 1 }));
    const c = collector();
    await rt.handle(textMessage('/hi'), c.reply, c.deps);
    expect(c.texts()).toEqual(['Sorry, something went wrong.']);
  });
});

describe('access', () => {
  const access = accessPlugin({ allow: [ALICE], admins: [CAROL.toUpperCase()] });
  const rt = new BotRuntime(new Plugged(), { guards: { ...access.guards } }).use(access);
  const data = new MemoryDataStore();
  const STRANGER = '5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e' as UserIdHex;

  test('allowed senders pass, admins pass the admin guard, others are ignored silently', async () => {
    expect((await say(rt, data, '/hi')).texts()).toEqual(['hi']);
    expect((await say(rt, data, `/ban ${CAROL}`)).texts()).toEqual(['you are not allowed to use /ban']);
    expect((await say(rt, data, `/ban ${ALICE}`, CAROL as UserIdHex)).texts()).toEqual([`banned ${ALICE}`]);
    expect((await say(rt, data, '/hi', STRANGER)).replies).toEqual([]);
    expect((await say(rt, data, '/nope', STRANGER)).replies).toEqual([]);
    expect((await say(rt, data, 'plain', STRANGER)).replies).toEqual([]);
  });

  test('covers @OnJoin too: a stranger opening a conversation gets no welcome', async () => {
    @Bot({ name: 'Welcomer' })
    class Welcomer {
      @OnJoin()
      hello(ctx: MembershipContext): Promise<void> {
        return ctx.reply('welcome');
      }
    }
    const welcomer = new BotRuntime(new Welcomer()).use(access);
    const c = collector();
    const join = (userId: UserIdHex) => ({
      kind: 'join' as const,
      userId,
      conversation: { kind: 'direct' as const, id: userId },
    });
    await welcomer.handleMembership(join(STRANGER), c.deps);
    expect(c.sent).toEqual([]);
    await welcomer.handleMembership(join(ALICE), c.deps);
    expect(c.sent).toEqual([{ userId: ALICE, text: 'welcome' }]);
  });

  test('one door: plugins given to BotRuntime bring their guards, middleware and handlers', async () => {
    const now = 1_000;
    const rt = new BotRuntime(new Plugged(), {
      plugins: [access, rateLimit({ capacity: 5, refillPerSecond: 1, clock: () => now }), new PingPlugin()],
    });
    const d = new MemoryDataStore();
    expect((await say(rt, d, `/ban ${ALICE}`, CAROL as UserIdHex)).texts()).toEqual([`banned ${ALICE}`]);
    expect((await say(rt, d, `/ban ${CAROL}`)).texts()).toEqual(['you are not allowed to use /ban']);
    expect((await say(rt, d, '/ping', STRANGER)).replies).toEqual([]);
    expect((await say(rt, d, '/ping')).texts()).toEqual(['pong']);
    expect(d.get(rateLimitKey('Plugged', ALICE))).toBeDefined();
    expect(() => new BotRuntime(new Plugged(), { plugins: [access], guards: { admin: () => true } })).toThrow(
      /guard "admin" is given twice/,
    );
    expect(() => new BotRuntime(new Plugged(), { plugins: [access, {}] })).toThrow(
      /plugins\[1\] \(Object\) has no middleware\(\), guards or decorated handlers/,
    );
  });

  test('no allow list allows everyone; bad ids are configuration errors', async () => {
    const open = accessPlugin({ admins: [] });
    expect(open.isAllowed(STRANGER)).toBe(true);
    expect(open.isAdmin(STRANGER)).toBe(false);
    expect(() => accessPlugin({ allow: ['alice'] })).toThrow(/is not a user id/);
    expect(() => accessPlugin({ admins: 'x' as unknown as string[] })).toThrow(ConfigError);
  });
});

describe('help', () => {
  test('lists commands with a header and footer, hides guarded ones, explains one command', async () => {
    const data = new MemoryDataStore();
    const rt = new BotRuntime(new Plugged(), { help: false, guards: { admin: () => true } }).use(
      helpPlugin({ header: 'read this first', footer: 'bye', hideGuarded: true }),
    );
    expect((await say(rt, data, '/help')).texts()[0]!.split('\n')).toEqual([
      'read this first',
      'Plugged — for plugin tests',
      '/hi — says hi',
      '/help [command] — this list; /help <command> shows how to use one',
      'bye',
    ]);
    expect((await say(rt, data, '/help ban')).texts()).toEqual(['usage: /ban <who:user>\nbans']);
    expect((await say(rt, data, '/help zzz')).texts()).toEqual(['no command /zzz — try /help']);
    const renamed = new BotRuntime(new Plugged(), { guards: { admin: () => true } }).use(
      helpPlugin({ command: 'commands' }),
    );
    const list = (await say(renamed, data, '/commands')).texts()[0]!;
    expect(list).toContain('/commands [command] — this list; /commands <command> shows how to use one');
    expect(list).toContain('/ban <who:user> — bans');
    expect((await say(renamed, data, '/commands x')).texts()).toEqual(['no command /x — try /commands']);
    expect(() => helpPlugin({ command: 'Bad Name' })).toThrow(ConfigError);
  });
});

describe('ping', () => {
  test('/ping and /uptime next to a bot', async () => {
    let now = 5_000;
    const data = new MemoryDataStore();
    const rt = new BotRuntime([new Plugged(), new PingPlugin({ clock: () => now })], { guards });
    expect((await say(rt, data, '/ping')).texts()).toEqual(['pong']);
    now += 3_723_000;
    expect((await say(rt, data, '/uptime')).texts()).toEqual(['up 1h 2m 3s']);
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(90_061_000)).toBe('1d 1h 1m 1s');
    expect(formatDuration(86_400_000)).toBe('1d 0h 0m 0s');
  });
});
