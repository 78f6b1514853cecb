/**
 * What the group runtime tests (test/bot/groups*.test.ts) share: EchoBot, a runtime around it with
 * an in-memory stand-in for the client's group API, and a client whose events a test fires by hand.
 */
import { Bot, BotRuntime, OnCommand, type BotContext } from '../../framework/bot/index.js';
import type { UserIdHex } from '../../framework/relay/brand.js';
import type { ReceivedMessage } from '../../framework/relay/client.js';
import {
  BOB,
  SELF_ID,
  collector,
  fakeGroups,
  textMessage,
  type Collector,
  type FakeGroups,
} from './helpers.js';

export const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

@Bot({ name: 'EchoBot', description: 'repeats' })
export class EchoBot {
  seen: BotContext[] = [];
  adds: Array<Promise<void>> = [];

  @OnCommand('echo', { args: '<text...>', description: 'repeats the text' })
  echo(ctx: BotContext<{ text: string }>): string {
    this.seen.push(ctx);
    return ctx.args.text;
  }

  @OnCommand('where')
  where(ctx: BotContext): string {
    const c = ctx.conversation;
    return c.kind === 'group'
      ? `group ${c.groupId.slice(0, 4)} ${c.topicId.slice(0, 4)} ${c.name}`
      : 'direct';
  }

  @OnCommand('members')
  members(ctx: BotContext): string {
    const g = ctx.group;
    return g
      ? `${g.members.length}: ${g.members.map((m) => m.slice(0, 4)).join(' ')}; committer ${g.committer.slice(0, 4)} ${g.isCommitter}`
      : 'none';
  }

  @OnCommand('invite', { args: '<who:user>', guard: 'group-admin', description: 'adds someone' })
  invite(ctx: BotContext<{ who: UserIdHex }>): string {
    this.adds.push(ctx.group!.add(ctx.args.who));
    return `inviting ${ctx.args.who.slice(0, 4)}`;
  }

  @OnCommand('kick', { args: '<who:user>', guard: 'group-admin' })
  kick(ctx: BotContext<{ who: UserIdHex }>): void {
    void ctx.group!.remove([ctx.args.who]);
    throw new Error('changed my mind');
  }

  @OnCommand('bye')
  bye(ctx: BotContext): string {
    void ctx.group?.leave();
    return 'bye';
  }

  @OnCommand('waitadd', { args: '<who:user>' })
  async waitAdd(ctx: BotContext<{ who: UserIdHex }>): Promise<string> {
    await ctx.group!.add(ctx.args.who);
    return 'added';
  }

  @OnCommand('badadd', { args: '<who>' })
  badAdd(ctx: BotContext<{ who: string }>): void {
    void ctx.group!.add(ctx.args.who);
  }

  @OnCommand('team', { args: '<name> <who:user>' })
  async team(ctx: BotContext<{ name: string; who: UserIdHex }>): Promise<string> {
    const g = await ctx.bot.createGroup(ctx.args.name, [ctx.args.who, ctx.sender]);
    return `created ${g.members.length}`;
  }
}

export interface Setup {
  rt: BotRuntime;
  bot: EchoBot;
  groups: FakeGroups;
  say(text: string, opts?: Parameters<typeof textMessage>[1]): Promise<Collector>;
}

export function setup(options: ConstructorParameters<typeof BotRuntime>[1] = {}): Setup {
  const bot = new EchoBot();
  const groups = fakeGroups();
  const rt = new BotRuntime(bot, { admins: [BOB], ...options });
  return {
    rt,
    bot,
    groups,
    async say(text, opts = {}) {
      const c = collector(groups.api);
      await rt.handle(textMessage(text, { kind: 'group', ...opts }), c.reply, c.deps);
      return c;
    },
  };
}

export type Handler = (m: ReceivedMessage, reply: (r: unknown) => void, tx: unknown) => Promise<void>;

/** A client whose 'group', 'session' and 'message' events the test fires by hand. */
export function fakeClient(groups: FakeGroups) {
  const listeners = new Map<string, Set<(e: unknown) => void>>();
  const sent: Array<[string, string]> = [];
  let handler: Handler | undefined;
  return {
    userId: SELF_ID as UserIdHex,
    sent,
    setMessageHandler: (h: Handler | undefined) => void (handler = h),
    handler: (): Handler => handler!,
    send: async (u: string, t: string) => {
      sent.push([u, t]);
      return { id: 's' };
    },
    on: (event: string, fn: (e: unknown) => void) => {
      if (!listeners.has(event)) listeners.set(event, new Set());
      listeners.get(event)!.add(fn);
    },
    off: (event: string, fn: (e: unknown) => void) => void listeners.get(event)?.delete(fn),
    emit: (event: string, e: unknown) => {
      for (const fn of listeners.get(event) ?? []) fn(e);
    },
    listenerCount: (event: string) => listeners.get(event)?.size ?? 0,
    ...groups.api,
  } as unknown as Parameters<BotRuntime['attach']>[0] & {
    emit(event: string, e: unknown): void;
    listenerCount(event: string): number;
    handler(): Handler;
    sent: Array<[string, string]>;
  };
}
