/**
 * BotRuntime.stop() and handlers abandoned at their time limit: stop() aborts their signals and
 * waits for them, up to `stopGraceMs`, then gives up with a warning naming them; what they do with
 * ctx after stop() is a clear HandlerError, never a crash or a read of a closed store.
 */
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { Bot, BotRuntime, MemoryDataStore, OnCommand, type BotContext } from '../../framework/bot/index.js';
import { HandlerError } from '../../framework/relay/errors.js';
import { collector, textMessage } from './helpers.js';

/** A promise the test settles. */
function latch(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** Polls until `cond` holds; generous, never a timing assertion. */
async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A handler that ignores ctx.signal until released, then uses ctx (the store behind ctx.tx included). */
@Bot({ name: 'Stubborn', typing: false })
class Stubborn {
  release = latch();
  started = false;
  sawAbort = false;
  settled = false;
  afterRelease: unknown[] = [];

  @OnCommand('slow')
  async slow(ctx: BotContext): Promise<void> {
    this.started = true;
    await this.release.promise;
    this.sawAbort = ctx.signal.aborted;
    for (const use of [
      () => ctx.tx.loadData('k'),
      () => ctx.session.get(),
      () => ctx.bot.groups(),
      async () => ctx.tx.saveData('k', '1'),
    ]) {
      try {
        await use();
        this.afterRelease.push('ok');
      } catch (e) {
        this.afterRelease.push(e);
      }
    }
    ctx.reply('too late');
    this.settled = true;
  }
}

function logLines(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level: 'warn' }, sink), lines };
}

describe('stop() and handlers past their time limit', () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown): void => void unhandled.push(e);
  beforeAll(() => process.on('unhandledRejection', onUnhandled));
  afterAll(() => process.off('unhandledRejection', onUnhandled));

  test('stop() resolves only after an abandoned handler settled', async () => {
    const bot = new Stubborn();
    const rt = new BotRuntime(bot, { handlerTimeoutMs: 20, stopGraceMs: 60_000 });
    const store = new MemoryDataStore();
    const c = collector();
    await rt.handle(textMessage('/slow'), c.reply, c.deps, store.transaction());
    expect(c.texts()).toEqual(['Sorry, something went wrong.']);
    expect(bot.started).toBe(true);

    let stopped = false;
    const stopping = rt.stop().then(() => (stopped = true));
    // Many turns of the event loop: stop() must still be waiting for the handler.
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(stopped).toBe(false);
    expect(bot.settled).toBe(false);

    bot.release.open();
    await stopping;
    expect(bot.settled).toBe(true);
    // The signal was aborted (at the time limit, and again by stop()); its late reply was dropped.
    expect(bot.sawAbort).toBe(true);
    expect(c.texts()).toEqual(['Sorry, something went wrong.']);
    expect(unhandled).toEqual([]);
  });

  test('past the grace stop() gives up with a warning naming the handler; later ctx use is a clear error', async () => {
    const bot = new Stubborn();
    const { logger, lines } = logLines();
    const rt = new BotRuntime(bot, { handlerTimeoutMs: 20, stopGraceMs: 50, logger });
    const store = new MemoryDataStore();
    const c = collector();
    await rt.handle(textMessage('/slow'), c.reply, c.deps, store.transaction());

    await rt.stop();
    expect(bot.settled).toBe(false);
    const warning = lines.find((l) => String(l.msg).includes('gave up waiting'));
    expect(warning).toBeDefined();
    expect(warning!.handlers).toEqual(['/slow']);

    bot.release.open();
    await until(() => bot.settled);
    expect(bot.afterRelease).toHaveLength(4);
    for (const e of bot.afterRelease) {
      // ctx.session wraps its store's refusal (StorageError, cause the HandlerError).
      const cause = e instanceof HandlerError ? e : (e as Error).cause;
      expect(cause).toBeInstanceOf(HandlerError);
      expect((cause as Error).message).toMatch(/after the runtime stopped|after the handler finished/);
    }
    expect((bot.afterRelease[0] as Error).message).toMatch(/ctx\.tx\.loadData\(\) after the runtime stopped/);
    expect(c.texts()).toEqual(['Sorry, something went wrong.']);
    expect(unhandled).toEqual([]);
  });

  test('stopGraceMs must be a whole number of ms, 0 or more', () => {
    expect(() => new BotRuntime(new Stubborn(), { stopGraceMs: -1 })).toThrow(/stopGraceMs/);
  });
});
