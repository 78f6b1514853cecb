/**
 * The compiler alone: a BotPlan from scanBots() compiled to middleware and run on contexts built by
 * hand, without a BotRuntime or a client.
 */
import { pino } from 'pino';
import {
  Bot,
  compileBot,
  compileHandlers,
  MemorySessionStore,
  OnCommand,
  OnError,
  OnJoin,
  OnMessage,
  run,
  scanBots,
  type BotContext,
  type Args,
  type BotPlan,
  type MembershipContext,
  type Middleware,
  type ReplyContent,
  type Update,
} from '../../framework/bot/index.js';
import { ReplyGate, type HandleDeps } from '../../framework/bot/context.js';
import { LazySession } from '../../framework/bot/session.js';
import { noTransaction } from '../../framework/bot/data.js';
import { TimeLease } from '../../framework/bot/time-lease.js';
import { updateContext, type UpdateContext } from '../../framework/bot/update-context.js';
import type { UserIdHex } from '../../framework/relay/brand.js';
import { ALICE, CAROL, SELF_ID, textMessage, withoutId } from './helpers.js';

@Bot({ name: 'Compiled' })
class Compiled {
  @OnCommand('add', { args: '<a:int> <b:int>', guard: (ctx) => ctx.sender === ALICE })
  add(ctx: BotContext<{ a: number; b: number }>): string {
    return `${ctx.args.a + ctx.args.b}`;
  }

  @OnCommand('count')
  async count(ctx: BotContext<Args, { n?: number }>): Promise<string> {
    const s = await ctx.session.get();
    s.n = (s.n ?? 0) + 1;
    return `n=${s.n}`;
  }

  @OnCommand('boom')
  boom(): void {
    throw new Error('boom');
  }

  @OnCommand('hang')
  hang(ctx: BotContext): Promise<void> {
    return new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
  }

  @OnMessage(/^hi (\w+)/)
  hi(ctx: BotContext): string {
    return `hello ${ctx.match![1]}`;
  }

  @OnJoin()
  joined(ctx: MembershipContext): Promise<void> {
    return ctx.reply(`welcome ${ctx.userId.slice(0, 4)}`);
  }

  @OnError()
  failed(err: Error): string {
    return `failed: ${err.message}`;
  }
}

interface Ran {
  replies: Array<string | ReplyContent>;
  posted: Array<string | ReplyContent>;
  settled: boolean[];
}

const store = new MemorySessionStore();

function contextFor(
  plan: BotPlan,
  update: Update,
  out: Ran,
  command?: { name: string; args: string },
): UpdateContext {
  const conversation =
    update.kind === 'message'
      ? { kind: 'direct' as const, id: update.message.from }
      : (update.conversation as { kind: 'direct'; id: string });
  const gate = new ReplyGate(
    (r) => out.replies.push(withoutId(r)),
    () => undefined,
  );
  const deps: HandleDeps = { selfId: SELF_ID, send: async () => undefined };
  return updateContext({
    update,
    conversation,
    sender: (update.kind === 'message' ? update.message.from : ALICE) as UserIdHex,
    command: command?.name,
    argsText: command?.args ?? '',
    group: undefined,
    bot: {
      name: plan.name,
      userId: SELF_ID,
      commands: plan.commandInfos,
      createGroup: () => Promise.reject(new Error('no groups')),
      groups: () => Promise.resolve([]),
    },
    log: pino({ level: 'silent' }),
    tx: noTransaction,
    addressedByName: false,
    now: () => 0,
    schedule: () => 'job',
    run: {
      deps,
      session: new LazySession(conversation.id, store, undefined),
      controller: new AbortController(),
      gate,
      reply: (r) => out.replies.push(withoutId(r)),
      late: () => undefined,
      post: async (r) => void out.posted.push(r),
      intents: { settle: (ok) => void out.settled.push(ok) },
      lease: new TimeLease(),
      detached: undefined,
      newId: () => 'id',
      abandon: () => undefined,
    },
  });
}

async function send(
  plan: BotPlan,
  text: string,
  opts: { from?: UserIdHex; user?: Middleware<BotContext> } = {},
): Promise<Ran> {
  const out: Ran = { replies: [], posted: [], settled: [] };
  const message = textMessage(text, { id: null, ...(opts.from ? { from: opts.from } : {}) });
  const head = /^\/(\w+)\s*(.*)$/.exec(text);
  const chain = compileBot(plan, opts.user ? { user: opts.user } : {});
  const ctx = contextFor(
    plan,
    { kind: 'message', message },
    out,
    head ? { name: head[1]!, args: head[2]! } : undefined,
  );
  await run(chain, ctx);
  return out;
}

describe('compileBot', () => {
  const plan = scanBots(new Compiled(), { handlerTimeoutMs: 50 });

  test('one middleware per handler, plus the unknown-command answer', () => {
    const handlers = plan.commands.length + plan.messages.length + plan.membership.join.length;
    expect(compileHandlers(plan)).toHaveLength(handlers + 1);
  });

  test('commands: guard before arguments, typed arguments, usage on bad input, unknown commands', async () => {
    expect((await send(plan, '/add 2 3')).replies).toEqual(['5']);
    expect((await send(plan, '/add 2', { from: CAROL as UserIdHex })).replies).toEqual([
      'you are not allowed to use /add',
    ]);
    expect((await send(plan, '/add 2 x')).replies[0]).toMatch(/^usage: \/add <a:int> <b:int>\n/);
    expect((await send(plan, '/nope')).replies).toEqual(['unknown command /nope — try /help']);
    expect((await send(plan, '/help')).replies[0]).toMatch(/\/add/);
  });

  test('@OnMessage with its match', async () => {
    expect((await send(plan, 'hi there')).replies).toEqual(['hello there']);
    expect((await send(plan, 'bye')).replies).toEqual([]);
  });

  test('the session is saved after a handler that succeeded', async () => {
    expect((await send(plan, '/count')).replies).toEqual(['n=1']);
    expect((await send(plan, '/count')).replies).toEqual(['n=2']);
  });

  test('recover answers a failure through @OnError; group intents settle with the outcome', async () => {
    const failed = await send(plan, '/boom');
    expect(failed.replies).toEqual(['failed: boom']);
    expect(failed.settled).toEqual([false]);
    expect((await send(plan, '/add 1 1')).settled).toEqual([true]);
  });

  test('the time limit is middleware: a hung handler is aborted and answered as a failure', async () => {
    expect((await send(plan, '/hang')).replies).toEqual(['failed: handler did not finish within 50 ms']);
  });

  test('the runtime middleware can be wrapped, e.g. to count failures seen by recover', async () => {
    const names: string[] = [];
    const failures: string[] = [];
    const chain = compileBot(plan, {
      wrap: (name, mw) => {
        names.push(name);
        if (name !== 'time-limit') return mw;
        return async (ctx, next) => {
          try {
            await mw(ctx, next);
          } catch (e) {
            failures.push(`${ctx.command}: ${(e as Error).message}`);
            throw e;
          }
        };
      },
    });
    expect(names).toEqual(['recover', 'group-intents', 'time-limit', 'auto-typing', 'session-save']);
    const out: Ran = { replies: [], posted: [], settled: [] };
    const message = textMessage('/boom', { id: null });
    await run(chain, contextFor(plan, { kind: 'message', message }, out, { name: 'boom', args: '' }));
    expect(failures).toEqual(['boom: boom']);
    expect(out.replies).toEqual(['failed: boom']);
  });

  test('user middleware runs before the handlers and can stop an update', async () => {
    const seen: string[] = [];
    const user: Middleware<BotContext> = (ctx, next) => {
      seen.push(`${ctx.update.kind} ${ctx.command ?? '-'}`);
      return ctx.command === 'add' ? undefined : next();
    };
    expect((await send(plan, '/add 1 2', { user })).replies).toEqual([]);
    expect((await send(plan, '/count', { user })).replies).toEqual(['n=3']);
    expect(seen).toEqual(['message add', 'message count']);
  });

  test('a membership update runs through the same chain, so middleware can cover @OnJoin', async () => {
    const update: Update = { kind: 'join', userId: ALICE, conversation: { kind: 'direct', id: ALICE } };
    const open: Ran = { replies: [], posted: [], settled: [] };
    await run(compileBot(plan), contextFor(plan, update, open));
    expect(open.posted).toEqual(['welcome a11c']);
    const kinds: string[] = [];
    const closed: Ran = { replies: [], posted: [], settled: [] };
    const deny: Middleware<BotContext> = (ctx, next) => {
      kinds.push(ctx.update.kind);
      return ctx.sender === ALICE ? undefined : next();
    };
    await run(compileBot(plan, { user: deny }), contextFor(plan, update, closed));
    expect(kinds).toEqual(['join']);
    expect(closed.posted).toEqual([]);
  });
});
