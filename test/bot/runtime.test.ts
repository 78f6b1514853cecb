import { jest } from '@jest/globals';
import {
  Bot,
  BotRuntime,
  MemorySessionStore,
  OnCommand,
  OnError,
  OnJoin,
  OnMessage,
  type BotContext,
  type MembershipContext,
  type SessionStore,
} from '../../framework/bot/index.js';
import type { UserIdHex } from '../../framework/relay/brand.js';
import { ConfigError, HandlerError } from '../../framework/relay/errors.js';
import { ALICE, CAROL, SELF_ID, collector, textMessage, withoutId, type Collector } from './helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

@Bot({ name: 'ReminderBot', description: 'reminds you of things' })
class ReminderBot {
  seen: BotContext[] = [];

  @OnCommand('remind', { aliases: ['r'], description: 'set a reminder', args: '<minutes:int> <text...>' })
  remind(ctx: BotContext<{ minutes: number; text: string }>): string {
    this.seen.push(ctx);
    return `ok: ${ctx.args.text} in ${ctx.args.minutes} min`;
  }

  @OnCommand('whoami')
  whoami(ctx: BotContext): void {
    ctx.reply({
      content: `${ctx.sender} ${ctx.conversation.kind}:${ctx.conversation.id}`,
      replyTo: 'custom',
    });
  }

  @OnCommand('ban', { guard: 'admin', args: '<who:user>' })
  ban(ctx: BotContext<{ who: UserIdHex }>): string {
    return `banned ${ctx.args.who}`;
  }

  @OnCommand('secret', { guard: (ctx) => ctx.sender === ALICE })
  secret(): string {
    return 'the secret';
  }

  @OnCommand('boom')
  boom(): void {
    throw new Error('kaboom');
  }

  @OnCommand('slow')
  async slow(ctx: BotContext): Promise<void> {
    await sleep(150);
    ctx.reply('too late');
  }

  @OnCommand('tell', { args: '<who:user> <text...>' })
  async tell(ctx: BotContext<{ who: UserIdHex; text: string }>): Promise<string> {
    await ctx.send(ctx.args.who, ctx.args.text);
    return 'sent';
  }

  @OnMessage(/^remind me in (\d+)/i)
  natural(ctx: BotContext): string {
    return `natural ${ctx.match?.[1]}`;
  }

  @OnMessage((ctx) => ctx.text.includes('thanks'))
  thanks(): string {
    return "you're welcome";
  }

  @OnMessage()
  fallback(ctx: BotContext): void {
    ctx.reply(`echo: ${ctx.text}`);
  }
}

function runtime(
  options: ConstructorParameters<typeof BotRuntime>[1] = {},
  bot: object = new ReminderBot(),
): BotRuntime {
  return new BotRuntime(bot, { guards: { admin: (ctx) => ctx.sender === ALICE }, ...options });
}

async function say(
  rt: BotRuntime,
  text: string,
  opts: Parameters<typeof textMessage>[1] = {},
): Promise<Collector> {
  const c = collector();
  await rt.handle(textMessage(text, opts), c.reply, c.deps);
  return c;
}

describe('routing', () => {
  test('a command gets typed args; a returned string is a reply to the incoming id', async () => {
    const bot = new ReminderBot();
    const c = await say(runtime({}, bot), '/remind 5 "buy milk"', { id: 'msg-1' });
    expect(c.replies).toEqual([{ content: 'ok: "buy milk" in 5 min', replyTo: 'msg-1' }]);
    expect(bot.seen[0]!.args).toEqual({ minutes: 5, text: '"buy milk"' });
    expect(bot.seen[0]!.command).toBe('remind');
  });

  test('a message without an id gets a plain reply', async () => {
    expect((await say(runtime(), '/remind 1 x', { id: null })).replies).toEqual(['ok: x in 1 min']);
  });

  test('alias, capitalised name and addressing by name or user id', async () => {
    const rt = runtime();
    for (const text of [
      '/r 2 tea',
      '/Remind 2 tea',
      '/remind@ReminderBot 2 tea',
      '/remind@reminderbot 2 tea',
      `/remind@${SELF_ID.toUpperCase()} 2 tea`,
    ]) {
      expect((await say(rt, text)).texts()).toEqual(['ok: tea in 2 min']);
    }
  });

  test('a command for another bot is ignored entirely', async () => {
    const rt = runtime();
    const seen = jest.fn<(ctx: BotContext) => void>();
    rt.use((ctx, next) => {
      seen(ctx);
      return next();
    });
    expect((await say(rt, '/remind@OtherBot 2 tea')).replies).toEqual([]);
    expect((await say(rt, '/nothing@OtherBot')).replies).toEqual([]);
    expect(seen).not.toHaveBeenCalled();
  });

  test('sender and conversation come from the authenticated message', async () => {
    const c = await say(runtime(), '/whoami from:someone-else', { id: 'm' });
    expect(c.replies).toEqual([{ content: `${ALICE} direct:${ALICE}`, replyTo: 'custom' }]);
  });

  test('unknown command points to /help', async () => {
    const rt = runtime();
    expect((await say(rt, '/foo bar')).texts()).toEqual(['unknown command /foo — try /help']);
    expect((await say(runtime({ unknownCommandReply: false }), '/foo')).replies).toEqual([]);
  });

  test('in a group, only an unknown command addressed to us by name is answered', async () => {
    const rt = runtime();
    expect((await say(rt, '/foo', { kind: 'group' })).replies).toEqual([]);
    expect((await say(rt, '/foo@ReminderBot', { kind: 'group' })).texts()).toEqual([
      'unknown command /foo — try /help@ReminderBot',
    ]);
    const c = await say(rt, '/whoami', { kind: 'group' });
    expect(c.texts()).toEqual([`${ALICE} group:${'f'.repeat(64)}`]);
  });

  test('bad args answer with the usage line and the reason', async () => {
    const rt = runtime();
    expect((await say(rt, '/remind soon tea')).texts()).toEqual([
      'usage: /remind <minutes:int> <text…>\nminutes: expected a whole number within ±9007199254740991, got "soon"',
    ]);
    expect((await say(rt, '/r')).texts()[0]!.split('\n')).toEqual([
      'usage: /remind <minutes:int> <text…>',
      'missing <minutes:int>',
    ]);
    expect((await say(rt, '/remind "5 unclosed')).texts()).toEqual([
      'usage: /remind <minutes:int> <text…>\nunclosed " quote',
    ]);
  });

  test('a malformed command line is answered in a direct conversation only', async () => {
    const rt = runtime();
    expect((await say(rt, '/')).texts()).toEqual(['expected a command name after "/" — try /help']);
    expect((await say(rt, '/remind@')).texts()).toEqual(['expected a bot name after "/remind@" — try /help']);
    expect((await say(rt, '/', { kind: 'group' })).replies).toEqual([]);
  });

  test('non-text content is neither a command nor a message for @OnMessage', async () => {
    const rt = runtime();
    expect((await say(rt, '/remind 1 x', { type: 'image' })).replies).toEqual([]);
  });
});

describe('guards', () => {
  test('a named guard refuses before the arguments are read', async () => {
    const rt = runtime();
    const carol = CAROL as UserIdHex;
    expect((await say(rt, '/ban', { from: carol })).texts()).toEqual(['you are not allowed to use /ban']);
    expect((await say(rt, `/ban ${CAROL}`)).texts()).toEqual([`banned ${CAROL}`]);
  });

  test('a function guard, and a custom refusal', async () => {
    const rt = runtime({ refusalReply: 'nope' });
    expect((await say(rt, '/secret', { from: CAROL as UserIdHex })).texts()).toEqual(['nope']);
    expect((await say(rt, '/secret')).texts()).toEqual(['the secret']);
  });

  test('a guard name without a guard is a start-up ConfigError naming the fix', () => {
    expect(() => new BotRuntime(new ReminderBot(), {})).toThrow(ConfigError);
    expect(() => new BotRuntime(new ReminderBot(), {})).toThrow(
      /pass \{ guards: \{ admin: \(ctx\) => … \} \}/,
    );
  });
});

describe('@OnMessage', () => {
  test('RegExp filter with ctx.match, predicate filter, catch-all; first match wins', async () => {
    const rt = runtime();
    expect((await say(rt, 'Remind me in 10 minutes')).texts()).toEqual(['natural 10']);
    expect((await say(rt, 'thanks! remind me in 5')).texts()).toEqual(["you're welcome"]);
    expect((await say(rt, 'hello')).texts()).toEqual(['echo: hello']);
  });

  test('commands never reach @OnMessage', async () => {
    expect((await say(runtime(), '/remindme in 10')).texts()).toEqual([
      'unknown command /remindme — try /help',
    ]);
  });
});

describe('errors and time limits', () => {
  test('a failing handler gets the default error reply and handle() resolves', async () => {
    const logged: unknown[] = [];
    const logger = fakeLogger(logged);
    const c = await say(runtime({ logger }), '/boom', { id: 'b1' });
    expect(c.replies).toEqual([{ content: 'Sorry, something went wrong.', replyTo: 'b1' }]);
    expect(logged).toContainEqual(
      expect.objectContaining({ msg: 'handler failed', command: 'boom', sender: ALICE }),
    );
  });

  test('custom and disabled error replies', async () => {
    expect((await say(runtime({ errorReply: 'oops' }), '/boom')).texts()).toEqual(['oops']);
    expect((await say(runtime({ errorReply: false }), '/boom')).replies).toEqual([]);
  });

  test('@OnError answers instead, with the error and context', async () => {
    @Bot({ name: 'Careful' })
    class Careful {
      @OnCommand('boom')
      boom(): void {
        throw new Error('kaboom');
      }
      @OnError()
      failed(err: Error, ctx: BotContext): string {
        return `failed /${ctx.command}: ${err.message}`;
      }
    }
    expect((await say(new BotRuntime(new Careful()), '/boom')).texts()).toEqual(['failed /boom: kaboom']);
  });

  test('a failing @OnError falls back to the error reply', async () => {
    @Bot({ name: 'Broken' })
    class Broken {
      @OnCommand('boom')
      boom(): void {
        throw new Error('kaboom');
      }
      @OnError()
      failed(): void {
        throw new Error('again');
      }
    }
    expect((await say(new BotRuntime(new Broken()), '/boom')).texts()).toEqual([
      'Sorry, something went wrong.',
    ]);
  });

  test('a handler over its time limit is an error; its late replies are dropped', async () => {
    const rt = runtime({ handlerTimeoutMs: 30 });
    const c = await say(rt, '/slow');
    expect(c.texts()).toEqual(['Sorry, something went wrong.']);
    await sleep(200);
    expect(c.texts()).toEqual(['Sorry, something went wrong.']);
  });

  test('@OnError sees the timeout and the aborted signal', async () => {
    let signal: AbortSignal | undefined;
    @Bot({ name: 'Timed' })
    class Timed {
      @OnCommand('wait')
      async wait(ctx: BotContext): Promise<void> {
        signal = ctx.signal;
        await sleep(150);
      }
      @OnError()
      failed(err: Error): string {
        return `${err instanceof HandlerError} ${err.message}`;
      }
    }
    const c = await say(new BotRuntime(new Timed(), { handlerTimeoutMs: 20 }), '/wait');
    expect(c.texts()).toEqual(['true handler did not finish within 20 ms']);
    expect(signal?.aborted).toBe(true);
  });

  test('replies made after a handler returned are dropped', async () => {
    @Bot({ name: 'Leaky' })
    class Leaky {
      @OnCommand('later')
      later(ctx: BotContext): void {
        setTimeout(() => ctx.reply('late'), 10);
      }
    }
    const c = await say(new BotRuntime(new Leaky()), '/later');
    await sleep(40);
    expect(c.replies).toEqual([]);
  });

  test('a non-Error throw is still handled', async () => {
    const rt = runtime();
    rt.use(() => {
      throw 'a string';
    });
    expect((await say(rt, 'hi')).texts()).toEqual(['Sorry, something went wrong.']);
  });
});

describe('middleware', () => {
  test('use() middleware runs first, in order, sees the command, and can stop the chain', async () => {
    const rt = runtime();
    const order: string[] = [];
    rt.use(
      async (ctx, next) => {
        order.push(`a:${ctx.command}`);
        await next();
        order.push('a-after');
      },
      (ctx, next) => {
        order.push('b');
        if (ctx.text.includes('stop')) return;
        return next();
      },
    );
    expect((await say(rt, '/remind 1 go')).texts()).toEqual(['ok: go in 1 min']);
    expect(order).toEqual(['a:remind', 'b', 'a-after']);
    expect((await say(rt, '/remind 1 stop')).replies).toEqual([]);
  });

  test('next() called twice in user middleware becomes the error reply', async () => {
    const rt = runtime();
    rt.use(async (_ctx, next) => {
      await next();
      await next();
    });
    expect((await say(rt, 'hello')).texts()).toEqual(['echo: hello', 'Sorry, something went wrong.']);
  });
});

describe('outreach, help, sessions, instances', () => {
  test('ctx.send goes through deps.send, not the transaction', async () => {
    const c = await say(runtime(), `/tell ${CAROL} see you`);
    expect(c.sent).toEqual([{ userId: CAROL, text: 'see you' }]);
    expect(c.texts()).toEqual(['sent']);
  });

  test('ctx.send to the sender is refused: it would wait on its own conversation', async () => {
    const c = await say(runtime(), `/tell ${ALICE} hi`);
    expect(c.sent).toEqual([]);
    expect(c.texts()).toEqual(['Sorry, something went wrong.']);
  });

  test('built-in /help lists the commands', async () => {
    const help = (await say(runtime(), '/help')).texts()[0]!;
    expect(help.split('\n')).toEqual(
      expect.arrayContaining([
        'ReminderBot — reminds you of things',
        '/remind <minutes:int> <text…> — set a reminder (also /r)',
        '/ban <who:user>',
        '/help [command] — this list; /help <command> shows how to use one',
      ]),
    );
    expect((await say(runtime(), '/help r')).texts()).toEqual([
      'usage: /remind <minutes:int> <text…>\nset a reminder\nalso: /r',
    ]);
    expect((await say(runtime(), '/help /ReMind')).texts()[0]).toMatch(/^usage: \/remind/);
    expect((await say(runtime(), '/help nope')).texts()).toEqual(['no command /nope — try /help']);
    expect((await say(runtime(), '/help "<b>')).texts()).toEqual(['no command — try /help']);
    @Bot({ name: 'OwnHelp' })
    class OwnHelp {
      @OnCommand('help')
      help(): string {
        return 'mine';
      }
    }
    expect((await say(new BotRuntime(new OwnHelp()), '/help')).texts()).toEqual(['mine']);
  });

  test('sessions load lazily, are saved after success only when changed', async () => {
    const store = new MemorySessionStore();
    const save = jest.spyOn(store, 'save');
    const load = jest.spyOn(store, 'load');
    @Bot({ name: 'Counter' })
    class Counter {
      @OnCommand('count')
      async count(ctx: BotContext<object, { n: number }>): Promise<string> {
        const s = await ctx.session.get();
        s.n += 1;
        return String(s.n);
      }
      @OnCommand('peek')
      async peek(ctx: BotContext<object, { n: number }>): Promise<string> {
        return String((await ctx.session.get()).n);
      }
      @OnCommand('fail')
      async fail(ctx: BotContext<object, { n: number }>): Promise<void> {
        (await ctx.session.get()).n = 100;
        throw new Error('no');
      }
      @OnCommand('none')
      none(): void {}
    }
    const rt = new BotRuntime(new Counter(), { session: { store, initial: () => ({ n: 0 }) } });
    expect((await say(rt, '/count')).texts()).toEqual(['1']);
    expect((await say(rt, '/count')).texts()).toEqual(['2']);
    expect((await say(rt, '/count', { from: CAROL as UserIdHex })).texts()).toEqual(['1']);
    await say(rt, '/fail');
    expect((await say(rt, '/peek')).texts()).toEqual(['2']);
    expect(save).toHaveBeenCalledTimes(3);
    load.mockClear();
    await say(rt, '/none');
    expect(load).not.toHaveBeenCalled();
  });

  test('a handler that times out does not save its session, even when it finishes later', async () => {
    const store = new MemorySessionStore();
    const save = jest.spyOn(store, 'save');
    @Bot({ name: 'Late' })
    class Late {
      @OnCommand('late')
      async late(ctx: BotContext): Promise<void> {
        (await ctx.session.get()).touched = true;
        await sleep(60);
      }
    }
    const c = await say(new BotRuntime(new Late(), { session: { store }, handlerTimeoutMs: 20 }), '/late');
    expect(c.texts()).toEqual(['Sorry, something went wrong.']);
    await sleep(100);
    expect(save).not.toHaveBeenCalled();
  });

  test('ctx.session without a store is a ConfigError answered as a failure', async () => {
    @Bot({ name: 'NoStore' })
    class NoStore {
      @OnCommand('s')
      async s(ctx: BotContext): Promise<void> {
        await ctx.session.get();
      }
      @OnError()
      failed(err: Error): string {
        return err instanceof ConfigError ? 'config' : 'other';
      }
    }
    expect((await say(new BotRuntime(new NoStore()), '/s')).texts()).toEqual(['config']);
  });

  test('a failing session store is a handler failure', async () => {
    const store: SessionStore = { load: async () => ({}), save: () => Promise.reject(new Error('disk')) };
    @Bot({ name: 'Saver' })
    class Saver {
      @OnCommand('s')
      async s(ctx: BotContext): Promise<string> {
        (await ctx.session.get()).x = 1;
        return 'done';
      }
    }
    const c = await say(new BotRuntime(new Saver(), { session: { store } }), '/s');
    expect(c.texts()).toEqual(['done', 'Sorry, something went wrong.']);
  });

  test('two runtimes in one process keep their handlers apart', async () => {
    @Bot({ name: 'Echo' })
    class Echo {
      @OnCommand('echo', { args: '<text...>' })
      echo(ctx: BotContext<{ text: string }>): string {
        return ctx.args.text;
      }
    }
    const echo = new BotRuntime(new Echo());
    const reminder = runtime();
    expect((await say(echo, '/echo hi')).texts()).toEqual(['hi']);
    expect((await say(echo, '/remind 1 x')).texts()).toEqual(['unknown command /remind — try /help']);
    expect((await say(reminder, '/echo hi')).texts()).toEqual(['unknown command /echo — try /help']);
    expect((await say(echo, '/echo@ReminderBot hi')).replies).toEqual([]);
  });

  test('several instances make one bot; clashes are start-up errors', async () => {
    class Extra {
      @OnCommand('extra')
      extra(): string {
        return 'extra!';
      }
    }
    const rt = runtime({}, [new ReminderBot(), new Extra()]);
    expect((await say(rt, '/extra')).texts()).toEqual(['extra!']);
    expect(rt.name).toBe('ReminderBot');
    class Clash {
      @OnCommand('r')
      r(): void {}
    }
    expect(() => runtime({}, [new ReminderBot(), new Clash()])).toThrow(
      /\/r is declared by two of the bot instances/,
    );
    expect(() => new BotRuntime(new Extra())).toThrow(
      /add @Bot\(\{ name \}\) to the class or pass \{ name \}/,
    );
    expect(() => new BotRuntime({})).toThrow(/has no @Bot or handler decorators/);
    expect(() => runtime({ handlerTimeoutMs: 0 })).toThrow(/handlerTimeoutMs/);
    expect(() => runtime({ name: 'bad name' })).toThrow(/bot name "bad name" is invalid/);
  });

  test('attach() installs handle() as the client message handler', async () => {
    let handler:
      ((m: ReturnType<typeof textMessage>, r: (x: unknown) => void) => Promise<void> | void) | undefined;
    const sent: unknown[] = [];
    const client = {
      userId: SELF_ID as UserIdHex,
      setMessageHandler: (h: typeof handler) => {
        handler = h;
      },
      send: async (u: string, t: unknown) => {
        sent.push([u, t]);
        return { id: '1' };
      },
      on: () => undefined,
      off: () => undefined,
    };
    runtime().attach(client as unknown as Parameters<BotRuntime['attach']>[0]);
    const replies: unknown[] = [];
    await handler!(textMessage(`/tell ${CAROL} yo`, { id: null }), (r) =>
      replies.push(withoutId(r as string)),
    );
    await handler!(textMessage(`/remind@${SELF_ID} 1 x`, { id: null }), (r) =>
      replies.push(withoutId(r as string)),
    );
    expect(replies).toEqual(['sent', 'ok: x in 1 min']);
    expect(sent).toEqual([[CAROL, 'yo']]);
  });

  test('handleMembership runs @OnJoin handlers; failures are only logged', async () => {
    const joined: MembershipContext[] = [];
    @Bot({ name: 'Greeter' })
    class Greeter {
      @OnJoin()
      async hello(ctx: MembershipContext): Promise<void> {
        joined.push(ctx);
        await ctx.send(ctx.userId, 'welcome');
        throw new Error('after greeting');
      }
    }
    const c = collector();
    await new BotRuntime(new Greeter()).handleMembership(
      { kind: 'join', userId: ALICE, conversation: { kind: 'direct', id: ALICE } },
      c.deps,
    );
    expect(joined).toHaveLength(1);
    expect(c.sent).toEqual([{ userId: ALICE, text: 'welcome' }]);
  });
});

function fakeLogger(out: unknown[]): NonNullable<ConstructorParameters<typeof BotRuntime>[1]>['logger'] {
  const make = (bindings: Record<string, unknown>): unknown => {
    const write = (obj: unknown, msg?: string): void => {
      out.push({ ...bindings, ...(typeof obj === 'object' ? obj : {}), msg });
    };
    return {
      child: (b: Record<string, unknown>) => make({ ...bindings, ...b }),
      error: write,
      warn: write,
      info: write,
      debug: write,
    };
  };
  return make({}) as NonNullable<ConstructorParameters<typeof BotRuntime>[1]>['logger'];
}
