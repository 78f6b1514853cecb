/**
 * The bot runtime end to end: every decorator, the argument parser and error handling, driven by
 * real Relay peers through a real broker (Mosquitto when it answers) against an SQLite store.
 */
import {
  Bot,
  OnCommand,
  OnError,
  OnJoin,
  OnMessage,
  type BotContext,
  type MembershipContext,
} from '../../framework/bot/index.js';
import { createTestHarness, type TestHarness, type TestPeer } from '../../framework/testing/index.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';

@Bot({ name: 'tester', description: 'exercises every decorator' })
class TesterBot {
  /** How often each failing handler ran: a message must be processed once, never redelivered. */
  readonly runs = { boom: 0, doubleFault: 0 };
  readonly joined: string[] = [];

  @OnCommand('remind', { aliases: ['r'], args: '<minutes:int> <text...>', description: 'set a reminder' })
  remind(ctx: BotContext<{ minutes: number; text: string }>): string {
    return `in ${ctx.args.minutes} min: ${ctx.args.text}`;
  }

  @OnCommand('words', { args: '<first> <second> [third]' })
  words(ctx: BotContext<{ first: string; second: string; third: string | undefined }>): string {
    return JSON.stringify(ctx.args);
  }

  @OnCommand('count', { description: 'counts, per conversation' })
  async count(ctx: BotContext<object, { n: number }>): Promise<string> {
    const s = await ctx.session.get();
    s.n = (s.n ?? 0) + 1;
    return `count ${s.n}`;
  }

  @OnCommand('countfail')
  async countFail(ctx: BotContext<object, { n: number }>): Promise<void> {
    const s = await ctx.session.get();
    s.n = 1000;
    throw new Error('after touching the session');
  }

  @OnCommand('admin', { guard: 'admin' })
  admin(): string {
    return 'welcome, admin';
  }

  @OnCommand('boom')
  boom(): void {
    this.runs.boom++;
    throw new Error('kaboom');
  }

  @OnCommand('doublefault')
  doubleFault(): void {
    this.runs.doubleFault++;
    throw new Error('first');
  }

  @OnMessage(/^hello (\w+)/i)
  hello(ctx: BotContext): string {
    return `hi ${ctx.match?.[1]}`;
  }

  @OnMessage()
  other(ctx: BotContext): string {
    return `text of ${ctx.text.length} chars`;
  }

  @OnJoin()
  async greet(ctx: MembershipContext): Promise<void> {
    this.joined.push(ctx.userId);
    await ctx.send(ctx.userId, `welcome to ${ctx.bot.name}`);
  }

  @OnError()
  failed(err: Error, ctx: BotContext): string {
    if (ctx.command === 'doublefault') throw new Error('the error handler fails too');
    return `error: ${err.message}`;
  }
}

let broker: TestBroker;
let h: TestHarness;
const bot = new TesterBot();
const admins = new Set<string>();

beforeAll(async () => {
  broker = await getTestBroker();
  h = await createTestHarness(bot, {
    brokerUrl: broker.url,
    runtimeOptions: { guards: { admin: (ctx) => admins.has(ctx.sender) } },
  });
});

afterAll(async () => {
  await h?.close();
  await broker?.close();
});

/** A peer past first contact: its greeting from @OnJoin has been taken. */
async function greetedPeer(): Promise<TestPeer> {
  const p = await h.peer();
  await p.send('hello there');
  const first = await p.nextReplies(2);
  expect(first.map((r) => r.content).sort()).toEqual(['hi there', 'welcome to tester']);
  return p;
}

async function ask(p: TestPeer, text: string): Promise<string> {
  await p.send(text);
  return (await p.nextReply()).content;
}

describe('decorators', () => {
  let alice: TestPeer;
  beforeAll(async () => {
    alice = await greetedPeer();
  });

  test('@OnJoin greets on first contact, once per peer', async () => {
    expect(bot.joined).toContain(alice.userId);
    expect(await ask(alice, 'hello again')).toBe('hi again');
    expect(bot.joined.filter((u) => u === alice.userId)).toHaveLength(1);
  });

  test('@OnCommand with typed args, an alias and a reply to the incoming message', async () => {
    const sent = await alice.send('/remind 5 buy "oat" milk');
    const r = await alice.nextReply();
    expect(r.content).toBe('in 5 min: buy "oat" milk');
    expect(r.replyTo).toBe(sent.id);
    expect(await ask(alice, '/R 7 tea')).toBe('in 7 min: tea');
    expect(await ask(alice, `/remind@tester 1 x`)).toBe('in 1 min: x');
    expect(await ask(alice, `/remind@${h.bot.userId} 2 y`)).toBe('in 2 min: y');
  });

  test('wrong arguments get the usage line', async () => {
    expect(await ask(alice, '/remind soon tea')).toBe(
      'usage: /remind <minutes:int> <text…>\nminutes: expected a whole number within ±9007199254740991, got "soon"',
    );
    expect(await ask(alice, '/words one')).toBe('usage: /words <first> <second> [third]\nmissing <second>');
    expect(await ask(alice, '/words "a b" c')).toBe('{"first":"a b","second":"c"}');
  });

  test('an unknown command points to /help, which explains each command', async () => {
    expect(await ask(alice, '/nope')).toBe('unknown command /nope — try /help');
    const help = await ask(alice, '/help');
    expect(help.split('\n')).toEqual(
      expect.arrayContaining([
        'tester — exercises every decorator',
        '/remind <minutes:int> <text…> — set a reminder (also /r)',
      ]),
    );
    expect(await ask(alice, '/help r')).toBe(
      'usage: /remind <minutes:int> <text…>\nset a reminder\nalso: /r',
    );
  });

  test('@OnMessage: a RegExp filter with its match, then the catch-all', async () => {
    expect(await ask(alice, 'Hello world')).toBe('hi world');
    expect(await ask(alice, 'anything else')).toBe('text of 13 chars');
  });

  test('a guard refuses, then admits once the sender is an admin', async () => {
    expect(await ask(alice, '/admin')).toBe('you are not allowed to use /admin');
    admins.add(alice.userId);
    expect(await ask(alice, '/admin')).toBe('welcome, admin');
  });

  test('@OnError answers a failing handler; a failing @OnError falls back to the default reply', async () => {
    expect(await ask(alice, '/boom')).toBe('error: kaboom');
    expect(await ask(alice, '/doublefault')).toBe('Sorry, something went wrong.');
  });
});

describe('hostile input through the broker', () => {
  let mallory: TestPeer;
  beforeAll(async () => {
    mallory = await greetedPeer();
  });

  test('a 64 KiB line: as text, as a rest argument and as an int', async () => {
    const big = 'x'.repeat(64 * 1024);
    expect(await ask(mallory, big)).toBe(`text of ${big.length} chars`);
    expect(await ask(mallory, `/remind 1 ${big}`)).toBe(`in 1 min: ${big}`);
    const numeral = '9'.repeat(64 * 1024);
    const answer = await ask(mallory, `/remind ${numeral} x`);
    expect(answer).toBe(
      `usage: /remind <minutes:int> <text…>\nminutes: expected a whole number within ±9007199254740991, got "${'9'.repeat(32)}…"`,
    );
    // A 64 KiB command name is refused before anything looks it up.
    expect(await ask(mallory, `/${'a'.repeat(64 * 1024)}`)).toBe(
      'a command name has at most 32 characters — try /help',
    );
  });

  test('unbalanced quotes', async () => {
    expect(await ask(mallory, '/words "a b')).toBe(
      'usage: /words <first> <second> [third]\nunclosed " quote',
    );
    expect(await ask(mallory, "/words a 'b")).toBe(
      "usage: /words <first> <second> [third]\nunclosed ' quote",
    );
    // A rest argument keeps the text verbatim, quotes and all.
    expect(await ask(mallory, '/remind 3 "unclosed')).toBe('in 3 min: "unclosed');
  });

  test('control characters', async () => {
    expect(await ask(mallory, '/words a\u0007b c')).toBe(
      'usage: /words <first> <second> [third]\ncontrol character U+0007 in the command',
    );
    expect(await ask(mallory, '/words a\u0000 b')).toBe(
      'usage: /words <first> <second> [third]\ncontrol character U+0000 in the command',
    );
    expect(await ask(mallory, '/\u001b[31m')).toBe('expected a command name after "/" — try /help');
    expect(await ask(mallory, 'plain \u0000\u001b text')).toBe('text of 13 chars');
  });
});

describe('persistence and failures', () => {
  test('ctx.session commits with the message, survives a restart and is per conversation', async () => {
    const carol = await greetedPeer();
    expect(await ask(carol, '/count')).toBe('count 1');
    expect(await ask(carol, '/count')).toBe('count 2');
    // A failing handler's session changes are not saved.
    expect(await ask(carol, '/countfail')).toBe('error: after touching the session');
    await h.restart();
    expect(await ask(carol, '/count')).toBe('count 3');
    const dave = await greetedPeer();
    expect(await ask(dave, '/count')).toBe('count 1');
  });

  test('a message sent while the bot is down is answered after the restart', async () => {
    const erin = await greetedPeer();
    await h.stop();
    await erin.send('/remind 4 while you were out');
    await h.start();
    expect((await erin.nextReply()).content).toBe('in 4 min: while you were out');
  });

  test('a failing handler runs once: its message is committed, not redelivered', async () => {
    const frank = await greetedPeer();
    const before = { ...bot.runs };
    const boom = await frank.send('/boom');
    expect((await frank.nextReply()).content).toBe('error: kaboom');
    await h.processed(boom.id);
    await h.restart();
    // A later message on the same conversation is answered, so everything before it was handled.
    expect(await ask(frank, '/remind 1 after')).toBe('in 1 min: after');
    expect(bot.runs.boom).toBe(before.boom + 1);
    expect(frank.replies.filter((r) => r.content === 'error: kaboom')).toHaveLength(1);
  });
});
