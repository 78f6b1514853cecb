/** Sessions and jobs in the message transaction, and the scheduler, with in-memory data. */
import { pino } from 'pino';
import {
  Bot,
  BotRuntime,
  JobScheduler,
  MemoryDataStore,
  MemorySessionStore,
  OnCommand,
  TOMBSTONE,
  decodeJob,
  encodeJob,
  jobKey,
  sessionKey,
  type BotContext,
  type JobSend,
} from '../../framework/bot/index.js';
import { ArgumentError, ConfigError, HandlerError } from '../../framework/relay/errors.js';
import { ALICE, CAROL, SELF_ID, collector, textMessage, withoutId } from './helpers.js';

@Bot({ name: 'Tx' })
class TxBot {
  late: BotContext | undefined;

  @OnCommand('count')
  async count(ctx: BotContext<object, { n?: number }>): Promise<string> {
    const s = await ctx.session.get();
    s.n = (s.n ?? 0) + 1;
    return String(s.n);
  }

  @OnCommand('later', { args: '<ms:int> <text...>' })
  later(ctx: BotContext<{ ms: number; text: string }>): string {
    return ctx.schedule({ inMs: ctx.args.ms, text: ctx.args.text });
  }

  @OnCommand('badschedule', { args: '<which>' })
  bad(ctx: BotContext<{ which: string }>): void {
    const requests = {
      both: { text: 'x', inMs: 1, at: 1 },
      neither: { text: 'x' },
      empty: { text: '', inMs: 1 },
      negative: { text: 'x', inMs: -5 },
      to: { text: 'x', inMs: 1, to: 'bob' },
    } as const;
    ctx.schedule(requests[ctx.args.which as keyof typeof requests]);
  }

  @OnCommand('keep')
  keep(ctx: BotContext): void {
    this.late = ctx;
  }
}

async function run(rt: BotRuntime, data: MemoryDataStore | undefined, text: string, from = ALICE) {
  const c = collector();
  await rt.handle(textMessage(text, { from, id: null }), c.reply, c.deps, data?.transaction());
  return c;
}

describe('sessions in the transaction', () => {
  test('ctx.session is read and written through the transaction under session:<bot>:<conversation>', async () => {
    const data = new MemoryDataStore();
    const rt = new BotRuntime(new TxBot());
    expect((await run(rt, data, '/count')).texts()).toEqual(['1']);
    expect((await run(rt, data, '/count')).texts()).toEqual(['2']);
    expect((await run(rt, data, '/count', CAROL as typeof ALICE)).texts()).toEqual(['1']);
    expect(data.get(sessionKey('Tx', ALICE))).toBe('{"n":2}');
    // A tombstone reads as no session.
    data.transaction().saveData(sessionKey('Tx', ALICE), TOMBSTONE);
    expect((await run(rt, data, '/count')).texts()).toEqual(['1']);
  });

  test('an explicit session store replaces the transaction', async () => {
    const data = new MemoryDataStore();
    const store = new MemorySessionStore();
    const rt = new BotRuntime(new TxBot(), { session: { store } });
    expect((await run(rt, data, '/count')).texts()).toEqual(['1']);
    expect(data.get(sessionKey('Tx', ALICE))).toBeUndefined();
    expect(await store.load(ALICE)).toEqual({ n: 1 });
  });

  test('writes after the handler finished are refused', async () => {
    const bot = new TxBot();
    const data = new MemoryDataStore();
    await run(new BotRuntime(bot), data, '/keep');
    expect(() => bot.late!.tx.saveData('x', '1')).toThrow(HandlerError);
    expect(() => bot.late!.schedule({ text: 'x', inMs: 1 })).toThrow(HandlerError);
    expect(data.get('x')).toBeUndefined();
  });

  test('ctx.tx without a transaction is a configuration error', async () => {
    const c = await run(new BotRuntime(new TxBot()), undefined, '/later 5 hi');
    expect(c.texts()).toEqual(['Sorry, something went wrong.']);
  });
});

describe('ctx.schedule', () => {
  test('writes a job keyed by bot and due time; bad requests are handler errors', async () => {
    let now = 1_000;
    const data = new MemoryDataStore();
    const rt = new BotRuntime(new TxBot(), { clock: () => now });
    const [key] = (await run(rt, data, '/later 500 wake up')).texts();
    expect(key).toMatch(/^jobs:Tx:000000000001500:/);
    expect(decodeJob(data.get(key!)!)).toEqual({ to: ALICE, text: 'wake up', dueAt: 1500 });
    now = 2_000;
    for (const which of ['both', 'neither', 'empty', 'negative', 'to']) {
      expect((await run(rt, data, `/badschedule ${which}`)).texts()).toEqual([
        'Sorry, something went wrong.',
      ]);
    }
    expect((await data.listConversationData('jobs:Tx:')).length).toBe(1);
  });

  test('attached without a store, scheduling is refused instead of never sent', async () => {
    const rt = new BotRuntime(new TxBot());
    let handler: ((m: unknown, r: (x: unknown) => void, tx: unknown) => Promise<void>) | undefined;
    const client = {
      userId: SELF_ID,
      setMessageHandler: (h: typeof handler) => (handler = h),
      send: async () => ({ id: '1' }),
      on: () => undefined,
      off: () => undefined,
    };
    rt.attach(client as unknown as Parameters<BotRuntime['attach']>[0]);
    const data = new MemoryDataStore();
    const replies: unknown[] = [];
    await handler!(
      textMessage('/later 5 x', { id: null }),
      (r) => replies.push(withoutId(r as string)),
      data.transaction(),
    );
    expect(replies).toEqual(['Sorry, something went wrong.']);
    expect(() => rt.attach(client as unknown as Parameters<BotRuntime['attach']>[0])).toThrow(ConfigError);
    await rt.detach();
  });
});

describe('JobScheduler', () => {
  const log = pino({ level: 'silent' });

  function setup(opts: { failFor?: Set<string>; ready?: () => boolean } = {}) {
    let now = 10_000;
    const data = new MemoryDataStore();
    const sent: Array<{ to: string; text: string }> = [];
    // Stands in for RelayClient.send: the data commits together with the "message".
    const send: JobSend = async (to, text, options) => {
      if (opts.failFor?.has(text)) throw new Error('broker down');
      sent.push({ to, text });
      const tx = data.transaction();
      for (const d of options.data) tx.saveData(d.conversationId, d.json);
      return { id: 'x' };
    };
    const scheduler = new JobScheduler({
      prefix: 'jobs:b:',
      source: data,
      send,
      now: () => now,
      log,
      ...(opts.ready ? { ready: opts.ready } : {}),
    });
    const add = (dueAt: number, text: string): string => {
      const key = jobKey('b', dueAt);
      data.transaction().saveData(key, encodeJob({ to: ALICE, text, dueAt }));
      return key;
    };
    return { data, sent, scheduler, add, advance: (ms: number) => (now += ms) };
  }

  test('sends due jobs oldest first, tombstones them in the same commit, skips the rest', async () => {
    const { data, sent, scheduler, add } = setup();
    const late = add(9_000, 'second');
    add(5_000, 'first');
    add(20_000, 'future');
    data.transaction().saveData(jobKey('b', 1_000), 'not json');
    data.transaction().saveData(jobKey('b', 2_000), TOMBSTONE);
    data.transaction().saveData('jobs:other:1', encodeJob({ to: ALICE, text: 'not ours', dueAt: 0 }));
    expect(await scheduler.tick()).toBe(2);
    expect(sent.map((s) => s.text)).toEqual(['first', 'second']);
    expect(data.get(late)).toBe(TOMBSTONE);
    expect(await scheduler.tick()).toBe(0);
  });

  test('a failing send is retried later; not ready means no pass', async () => {
    const failFor = new Set(['flaky']);
    let ready = false;
    const { sent, scheduler, add, advance } = setup({ failFor, ready: () => ready });
    add(1_000, 'flaky');
    expect(await scheduler.tick()).toBe(0);
    ready = true;
    expect(await scheduler.tick()).toBe(0);
    failFor.clear();
    expect(await scheduler.tick()).toBe(0); // backing off
    advance(1_000);
    expect(await scheduler.tick()).toBe(1);
    expect(sent.map((s) => s.text)).toEqual(['flaky']);
  });

  test('bad arguments are refused', () => {
    expect(() => jobKey('b', -1)).toThrow(ArgumentError);
    expect(() => jobKey('b', 1.5)).toThrow(ArgumentError);
    expect(
      () =>
        new JobScheduler({
          prefix: 'p',
          source: new MemoryDataStore(),
          send: async () => undefined,
          now: () => 0,
          log,
          pollMs: 0,
        }),
    ).toThrow(ArgumentError);
    expect(decodeJob('{"to":1}')).toBeUndefined();
    expect(decodeJob('[]')).toBeUndefined();
  });
});
