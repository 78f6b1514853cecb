/** The bot runtime: ctx.send, /help, sessions, several runtimes and instances, attach() (see runtime.test.ts). */
import { jest } from '@jest/globals';
import {
  Bot,
  BotRuntime,
  MemorySessionStore,
  OnCommand,
  OnError,
  OnJoin,
  type BotContext,
  type MembershipContext,
  type SessionStore,
} from '../../framework/bot/index.js';
import type { UserIdHex } from '../../framework/relay/brand.js';
import { ConfigError } from '../../framework/relay/errors.js';
import { ALICE, CAROL, SELF_ID, collector, textMessage, withoutId } from './helpers.js';
import { sleep, ReminderBot, runtime, say } from './reminder-bot.js';

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
