/**
 * The bot runtime with ReminderBot: routing, guards, @OnMessage and middleware.
 * runtime-errors.test.ts covers failures and time limits, runtime-outreach.test.ts sending, help,
 * sessions and instances.
 */
import { jest } from '@jest/globals';
import { BotRuntime, type BotContext } from '../../framework/bot/index.js';
import type { UserIdHex } from '../../framework/relay/brand.js';
import { ConfigError } from '../../framework/relay/errors.js';
import { ALICE, CAROL, SELF_ID } from './helpers.js';
import { ReminderBot, runtime, say } from './reminder-bot.js';

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
