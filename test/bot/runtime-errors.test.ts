/** The bot runtime: failing handlers, error replies, @OnError and time limits (see runtime.test.ts). */
import { Bot, BotRuntime, OnCommand, OnError, type BotContext } from '../../framework/bot/index.js';
import { HandlerError } from '../../framework/relay/errors.js';
import { ALICE } from './helpers.js';
import { sleep, runtime, say } from './reminder-bot.js';

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
