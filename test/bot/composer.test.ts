import { jest } from '@jest/globals';
import { Composer, compose, run, type Middleware } from '../../framework/bot/index.js';
import { HandlerError } from '../../framework/relay/errors.js';

interface Ctx {
  log: string[];
  flag?: boolean;
}

const mark =
  (name: string): Middleware<Ctx> =>
  async (ctx, next) => {
    ctx.log.push(`${name}>`);
    await next();
    ctx.log.push(`<${name}`);
  };
const end =
  (name: string): Middleware<Ctx> =>
  (ctx) => {
    ctx.log.push(name);
  };

async function exec(c: Composer<Ctx>, ctx: Ctx = { log: [] }): Promise<string[]> {
  await run(c.middleware(), ctx);
  return ctx.log;
}

describe('Composer', () => {
  test('runs middleware in order, onion style, and stops where next() is not called', async () => {
    const c = new Composer<Ctx>().use(mark('a'), mark('b')).use(end('c'), end('never'));
    expect(await exec(c)).toEqual(['a>', 'b>', 'c', '<b', '<a']);
  });

  test('middleware added later still runs; composers nest as middleware', async () => {
    const inner = new Composer<Ctx>().use(mark('inner'));
    const c = new Composer<Ctx>().use(inner);
    c.use(end('late'));
    expect(await exec(c)).toEqual(['inner>', 'late', '<inner']);
  });

  test('next() twice throws HandlerError at the second call', async () => {
    const caught: unknown[] = [];
    const c = new Composer<Ctx>().use(async (_ctx, next) => {
      await next();
      try {
        await next();
      } catch (e) {
        caught.push(e);
        throw e;
      }
    }, end('x'));
    await expect(exec(c)).rejects.toThrow(HandlerError);
    expect(caught[0]).toBeInstanceOf(HandlerError);
    expect((caught[0] as Error).message).toMatch(/next\(\) called more than once/);
  });

  test('next() twice without await throws synchronously', async () => {
    let threw: unknown;
    const mw = compose<Ctx>([
      (_ctx, next) => {
        void next();
        try {
          void next();
        } catch (e) {
          threw = e;
        }
      },
    ]);
    await run(mw, { log: [] });
    expect(threw).toBeInstanceOf(HandlerError);
  });

  test('filter runs its middleware only when the predicate holds, else skips to next', async () => {
    const c = (): Composer<Ctx> =>
      new Composer<Ctx>()
        .filter(async (ctx) => ctx.flag === true, mark('f'), end('inside'))
        .use(end('after'));
    expect(await exec(c(), { log: [], flag: true })).toEqual(['f>', 'inside', '<f']);
    expect(await exec(c(), { log: [], flag: false })).toEqual(['after']);
  });

  test('filter middleware can continue past the filter', async () => {
    const c = new Composer<Ctx>().filter(() => true, mark('f')).use(end('after'));
    expect(await exec(c)).toEqual(['f>', 'after', '<f']);
  });

  test('branch picks one side; either may continue', async () => {
    const c = (): Composer<Ctx> =>
      new Composer<Ctx>().branch((ctx) => ctx.flag === true, end('yes'), mark('no')).use(end('after'));
    expect(await exec(c(), { log: [], flag: true })).toEqual(['yes']);
    expect(await exec(c(), { log: [], flag: false })).toEqual(['no>', 'after', '<no']);
  });

  test('errorBoundary catches errors from inside it', async () => {
    const seen: unknown[] = [];
    const boom = new Error('boom');
    const c = new Composer<Ctx>()
      .errorBoundary(
        (err, ctx) => {
          seen.push(err);
          ctx.log.push('handled');
        },
        mark('in'),
        () => {
          throw boom;
        },
      )
      .use(end('after'));
    expect(await exec(c)).toEqual(['in>', 'handled']);
    expect(seen).toEqual([boom]);
  });

  test('errorBoundary lets errors from after it pass through', async () => {
    const onError = jest.fn<(err: unknown, ctx: Ctx) => void>();
    const later = new Error('later');
    const c = new Composer<Ctx>().errorBoundary(onError, mark('in')).use(() => {
      throw later;
    });
    await expect(exec(c)).rejects.toBe(later);
    expect(onError).not.toHaveBeenCalled();
  });

  test('an outer boundary catches what passes an inner one', async () => {
    const outer = jest.fn<(err: unknown, ctx: Ctx) => void>();
    const inner = jest.fn<(err: unknown, ctx: Ctx) => void>();
    const c = new Composer<Ctx>()
      .errorBoundary(
        outer,
        new Composer<Ctx>().errorBoundary(inner, mark('x')).use(() => Promise.reject(new Error('deep'))),
      )
      .use(end('unreached'));
    await exec(c);
    expect(inner).not.toHaveBeenCalled();
    expect(outer).toHaveBeenCalledWith(expect.objectContaining({ message: 'deep' }), expect.anything());
  });
});
