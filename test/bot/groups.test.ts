/** Groups in the bot runtime (PROTOCOL.md §9), with an in-memory stand-in for the client's group API. */
import { jest } from '@jest/globals';
import {
  Bot,
  BotRuntime,
  commandAudience,
  OnCommand,
  OnError,
  OnJoin,
  OnLeave,
  OnMembers,
  OnMessage,
  parseCommandHead,
  readBotMetadata,
  type BotContext,
  type GroupEvent,
  type MembersContext,
  type MembershipContext,
} from '../../framework/bot/index.js';
import type { UserIdHex } from '../../framework/relay/brand.js';
import type { ReceivedMessage } from '../../framework/relay/client.js';
import { ArgumentError, ConfigError, HandlerError } from '../../framework/relay/errors.js';
import { helpPlugin } from '../../plugins/index.js';
import {
  ALICE,
  BOB,
  CAROL,
  GROUP_ID,
  SELF_ID,
  TOPIC_ID,
  collector,
  fakeGroups,
  textMessage,
  type Collector,
  type FakeGroups,
} from './helpers.js';

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('addressing (PROTOCOL.md §9): commandAudience', () => {
  const self = { name: 'EchoBot', userId: SELF_ID };
  const audience = (
    text: string,
    kind: 'direct' | 'group',
    mode?: 'all' | 'addressed-only',
  ): ReturnType<typeof commandAudience> => commandAudience(parseCommandHead(text)!, self, kind, mode);

  test('a bare command: ours in a direct conversation and, by default, in a group', () => {
    expect(audience('/echo hi', 'direct')).toBe('bare');
    expect(audience('/echo hi', 'group')).toBe('bare');
    expect(audience('/echo hi', 'group', 'all')).toBe('bare');
  });

  test('our name, ASCII case-insensitive, in either kind of conversation', () => {
    for (const text of ['/echo@EchoBot hi', '/echo@echobot', '/ECHO@ECHOBOT x']) {
      expect(audience(text, 'group')).toBe('addressed');
      expect(audience(text, 'direct')).toBe('addressed');
    }
  });

  test('our user id, either case', () => {
    expect(audience(`/echo@${SELF_ID}`, 'group')).toBe('addressed');
    expect(audience(`/echo@${SELF_ID.toUpperCase()} x`, 'group')).toBe('addressed');
  });

  test('another target is ignored, in groups and in direct conversations', () => {
    for (const target of ['OtherBot', 'EchoBot2', 'Echo', CAROL]) {
      expect(audience(`/echo@${target} hi`, 'group')).toBe('ignore');
      expect(audience(`/echo@${target} hi`, 'direct')).toBe('ignore');
    }
  });

  test("'addressed-only' ignores bare commands in groups only", () => {
    expect(audience('/echo hi', 'group', 'addressed-only')).toBe('ignore');
    expect(audience('/echo@echobot hi', 'group', 'addressed-only')).toBe('addressed');
    expect(audience('/echo hi', 'direct', 'addressed-only')).toBe('bare');
    expect(audience('/echo@other hi', 'group', 'addressed-only')).toBe('ignore');
  });
});

@Bot({ name: 'EchoBot', description: 'repeats' })
class EchoBot {
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

interface Setup {
  rt: BotRuntime;
  bot: EchoBot;
  groups: FakeGroups;
  say(text: string, opts?: Parameters<typeof textMessage>[1]): Promise<Collector>;
}

function setup(options: ConstructorParameters<typeof BotRuntime>[1] = {}): Setup {
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

describe('commands in a group', () => {
  test("/cmd@us is answered with reply_to; another bot's command is ignored entirely", async () => {
    const { rt, say } = setup();
    const seen = jest.fn();
    rt.use((ctx, next) => {
      seen(ctx.command);
      return next();
    });
    expect((await say('/echo@echobot hi', { id: 'g1' })).replies).toEqual([{ content: 'hi', replyTo: 'g1' }]);
    expect((await say(`/echo@${SELF_ID} by id`)).texts()).toEqual(['by id']);
    expect((await say('/echo@OtherBot hi')).replies).toEqual([]);
    expect((await say('/nothing@OtherBot')).replies).toEqual([]);
    expect(seen.mock.calls).toEqual([['echo'], ['echo']]);
  });

  test('a bare /cmd is answered by default; with addressed-only only /cmd@us is', async () => {
    expect((await setup().say('/echo bare')).texts()).toEqual(['bare']);
    const quiet = setup({ groupCommands: 'addressed-only' });
    expect((await quiet.say('/echo bare')).replies).toEqual([]);
    expect((await quiet.say('/echo@EchoBot named')).texts()).toEqual(['named']);
    // Direct conversations are not affected.
    expect((await quiet.say('/echo direct', { kind: 'direct' })).texts()).toEqual(['direct']);
  });

  test('addressed-only from @Bot, and the runtime option wins over it', async () => {
    @Bot({ name: 'Shy', groupCommands: 'addressed-only' })
    class Shy {
      @OnCommand('hi')
      hi(): string {
        return 'hi';
      }
    }
    const say = async (rt: BotRuntime, text: string): Promise<string[]> => {
      const c = collector();
      await rt.handle(textMessage(text, { kind: 'group' }), c.reply, c.deps);
      return c.texts();
    };
    expect(await say(new BotRuntime(new Shy()), '/hi')).toEqual([]);
    expect(await say(new BotRuntime(new Shy()), '/hi@shy')).toEqual(['hi']);
    expect(await say(new BotRuntime(new Shy(), { groupCommands: 'all' }), '/hi')).toEqual(['hi']);
    expect(() => new BotRuntime(new Shy(), { groupCommands: 'some' as 'all' })).toThrow(
      /groupCommands "some" is invalid: use 'all' or 'addressed-only'/,
    );
    expect(() => Bot({ name: 'x', groupCommands: 'none' as 'all' })).toThrow(ConfigError);
  });

  test('unknown commands: silent when bare (another bot may own it), answered when addressed to us', async () => {
    const { say } = setup();
    expect((await say('/weather')).replies).toEqual([]);
    expect((await say('/weather@EchoBot')).texts()).toEqual(['unknown command /weather — try /help@EchoBot']);
    expect((await say('/weather', { kind: 'direct' })).texts()).toEqual([
      'unknown command /weather — try /help',
    ]);
  });

  test('ctx.conversation carries the group id, topic id and name', async () => {
    const { say } = setup();
    expect((await say('/where')).texts()).toEqual([`group ffff 7777 team`]);
    expect((await say('/where', { kind: 'direct' })).texts()).toEqual(['direct']);
  });

  test('ctx.group: members and committer as the client reports them; undefined in direct chats', async () => {
    const { say, groups } = setup();
    expect((await say('/members')).texts()).toEqual(['3: a11c b0b0 ca20; committer a11c false']);
    groups.info = { ...groups.info!, committer: SELF_ID as UserIdHex, isCommitter: true };
    expect((await say('/members')).texts()).toEqual(['3: a11c b0b0 ca20; committer b0b0 true']);
    expect((await say('/members', { kind: 'direct' })).texts()).toEqual(['none']);
    // Without the client's group API (a wrapper that does not forward it) there is no ctx.group.
    const c = collector();
    await setup().rt.handle(textMessage('/members', { kind: 'group' }), c.reply, c.deps);
    expect(c.texts()).toEqual(['none']);
  });

  test('a group the client no longer knows gives ctx.group undefined, not a failure', async () => {
    const { say, groups } = setup();
    groups.info = undefined;
    expect((await say('/members')).texts()).toEqual(['none']);
  });

  test('built-in /help shows the /cmd@name form in a group only', async () => {
    const { say } = setup();
    const group = (await say('/help')).texts()[0]!.split('\n');
    expect(group).toEqual(
      expect.arrayContaining([
        '/echo@EchoBot <text…> — repeats the text',
        '/help@EchoBot [command] — this list; /help <command> shows how to use one',
      ]),
    );
    expect((await say('/help /echo@EchoBot')).texts()).toEqual([
      'usage: /echo@EchoBot <text…>\nrepeats the text',
    ]);
    expect((await say('/help nope')).texts()).toEqual(['no command /nope — try /help@EchoBot']);
    const direct = (await say('/help', { kind: 'direct' })).texts()[0]!.split('\n');
    expect(direct).toContain('/echo <text…> — repeats the text');
  });

  test('the help plugin also lists /cmd@name in a group', async () => {
    const rt = new BotRuntime(new EchoBot(), { help: false, admins: [] }).use(
      helpPlugin({ hideGuarded: true }),
    );
    const c = collector();
    await rt.handle(textMessage('/help', { kind: 'group' }), c.reply, c.deps);
    expect(c.texts()[0]!.split('\n')).toEqual(
      expect.arrayContaining(['/echo@EchoBot <text…> — repeats the text']),
    );
    expect(c.texts()[0]).not.toContain('/invite');
  });
});

describe("guard: 'group-admin'", () => {
  test("admits the group's committer and configured admins, refuses others with who may", async () => {
    const { say } = setup();
    // ALICE is the committer of the fake group, BOB an admin, CAROL neither.
    expect((await say(`/invite ${BOB}`)).texts()).toEqual(['inviting b0b0']);
    expect((await say(`/invite ${CAROL}`, { from: BOB })).texts()).toEqual(['inviting ca20']);
    expect((await say(`/invite ${BOB}`, { from: CAROL as UserIdHex })).texts()).toEqual([
      "only the group's committer or an admin of this bot may use /invite",
    ]);
  });

  test('in a direct conversation only the admin list counts', async () => {
    const { say } = setup();
    expect((await say(`/invite ${BOB}`, { kind: 'direct' })).texts()).toEqual([
      'only an admin of this bot may use /invite',
    ]);
    // BOB passes the guard; there is no group to add to, so the handler itself fails.
    expect((await say(`/invite ${CAROL}`, { kind: 'direct', from: BOB })).texts()).toEqual([
      'Sorry, something went wrong.',
    ]);
  });

  test('the committer is read per message: a new committer is admitted', async () => {
    const { say, groups } = setup({ admins: [] });
    expect((await say(`/invite ${BOB}`, { from: CAROL as UserIdHex })).texts()[0]).toMatch(/^only/);
    groups.info = { ...groups.info!, committer: CAROL as UserIdHex };
    expect((await say(`/invite ${BOB}`, { from: CAROL as UserIdHex })).texts()).toEqual(['inviting b0b0']);
  });

  test('refusalReply replaces the message; configuration mistakes are start-up errors', async () => {
    expect(
      (await setup({ refusalReply: 'no' }).say(`/invite ${BOB}`, { from: CAROL as UserIdHex })).texts(),
    ).toEqual(['no']);
    expect(() => setup({ guards: { 'group-admin': () => true } })).toThrow(/guards.group-admin is built in/);
    expect(() => setup({ admins: ['alice'] })).toThrow(/admins: "alice" is not a user id/);
    expect(() => setup({ admins: 'x' as unknown as string[] })).toThrow(ConfigError);
  });
});

describe('ctx.group.add/remove/leave in a message handler', () => {
  test('start only after the handler returned, in order, and settle the returned promise', async () => {
    const { say, groups, bot } = setup();
    const c = await say(`/invite ${CAROL.toUpperCase()}`);
    expect(c.texts()).toEqual(['inviting ca20']);
    // The handler has returned; the change runs once the current event is done.
    expect(groups.calls).toEqual([]);
    await bot.adds[0];
    expect(groups.calls).toEqual([`addToGroup ffff ${CAROL}`]);
    await say('/bye');
    await settle();
    expect(groups.calls.at(-1)).toBe('leaveGroup ffff');
  });

  test('are dropped when the handler fails', async () => {
    const { say, groups } = setup();
    expect((await say(`/kick ${CAROL}`)).texts()).toEqual(['Sorry, something went wrong.']);
    await settle();
    expect(groups.calls).toEqual([]);
  });

  test('a failing change is logged and rejects the promise, without crashing anything', async () => {
    const { say, groups, bot } = setup();
    groups.failNext = true;
    expect((await say(`/invite ${CAROL}`)).texts()).toEqual(['inviting ca20']);
    await expect(bot.adds[0]).rejects.toThrow(/refused: addToGroup/);
  });

  test('a malformed user id throws at once, awaited or not', async () => {
    const { say } = setup();
    @Bot({ name: 'Catcher' })
    class Catcher {
      @OnCommand('add', { args: '<who>' })
      add(ctx: BotContext<{ who: string }>): void {
        void ctx.group!.add(ctx.args.who);
      }
      @OnError()
      failed(err: Error): string {
        return `${err.constructor.name}: ${err.message}`;
      }
    }
    const g = fakeGroups();
    const c = collector(g.api);
    await new BotRuntime(new Catcher()).handle(textMessage('/add alice', { kind: 'group' }), c.reply, c.deps);
    expect(c.texts()).toEqual(['ArgumentError: ctx.group.add(): "alice" is not a user id (32 hex digits)']);
    const self = collector(g.api);
    await new BotRuntime(new Catcher()).handle(
      textMessage(`/add ${SELF_ID}`, { kind: 'group' }),
      self.reply,
      self.deps,
    );
    expect(self.texts()[0]).toMatch(/is this bot; .*use leave\(\)/);
    expect((await say('/badadd x')).texts()).toEqual(['Sorry, something went wrong.']);
  });

  test('awaiting one inside the handler fails at once with a message naming the fix (no deadlock)', async () => {
    // A time limit far beyond the test's: before, the await hung until the limit.
    const { say, groups } = setup({ handlerTimeoutMs: 600_000 });
    @Bot({ name: 'Waiter' })
    class Waiter {
      @OnCommand('add', { args: '<who:user>' })
      async add(ctx: BotContext<{ who: UserIdHex }>): Promise<void> {
        await ctx.group!.add(ctx.args.who);
      }
      @OnError()
      failed(err: Error): string {
        return `${err.constructor.name}: ${err.message}`;
      }
    }
    const c = collector(groups.api);
    await new BotRuntime(new Waiter(), { handlerTimeoutMs: 600_000 }).handle(
      textMessage(`/add ${CAROL}`, { kind: 'group' }),
      c.reply,
      c.deps,
    );
    expect(c.texts()).toEqual([
      'HandlerError: ctx.group.add() was awaited inside the message handler, where it would wait on itself: it starts only after the handler returns and the message commits; call it without await',
    ]);
    expect((await say(`/waitadd ${CAROL}`)).texts()).toEqual(['Sorry, something went wrong.']);
    await settle();
    expect(groups.calls).toEqual([]);
  });

  test('one kept without await still settles after the commit, and catch() on it waits too', async () => {
    const { say, groups, bot } = setup();
    await say(`/invite ${CAROL}`);
    await expect(bot.adds[0]!.catch(() => 'failed')).resolves.toBeUndefined();
    expect(groups.calls).toEqual([`addToGroup ffff ${CAROL}`]);
  });

  test("attached, they wait for the client's commit of that very message ('message' event)", async () => {
    const groups = fakeGroups();
    const bot = new EchoBot();
    const rt = new BotRuntime(bot, { admins: [] });
    const client = fakeClient(groups);
    rt.attach(client);
    const handler = client.handler();
    const tx = { loadData: async () => undefined, saveData: () => undefined };
    // A first run whose commit failed (write conflict): the client runs the handler again with a
    // new message object and emits 'message' for that one only.
    const first = textMessage(`/invite ${BOB}`, { kind: 'group' });
    await handler(first, () => undefined, tx);
    const second = textMessage(`/invite ${CAROL}`, { kind: 'group' });
    await handler(second, () => undefined, tx);
    await settle();
    expect(groups.calls).toEqual([]);
    client.emit('message', second);
    await rt.stop();
    expect(groups.calls).toEqual([`addToGroup ffff ${CAROL}`]);
    await rt.detach();
    expect(client.listenerCount('message')).toBe(0);
  });

  test('calling one after the handler finished is a HandlerError', async () => {
    const { say, bot } = setup();
    await say('/echo keep');
    expect(() => bot.seen[0]!.group!.add(CAROL)).toThrow(HandlerError);
  });
});

describe('ctx.bot.createGroup and runtime.createGroup', () => {
  test('with or without a name; the members are checked; the bot itself is added by the client', async () => {
    const { say, groups } = setup();
    expect((await say(`/team ops ${CAROL}`, { kind: 'direct' })).texts()).toEqual(['created 3']);
    expect(groups.calls).toEqual([`createGroup ops ${CAROL},${ALICE}`]);
    const rt = new BotRuntime(new EchoBot());
    await expect(rt.createGroup([CAROL])).rejects.toThrow(/attach\(client\) the runtime first/);
  });

  test('through an attached runtime, by position: (members) or (name, members)', async () => {
    const groups = fakeGroups();
    const rt = new BotRuntime(new EchoBot());
    rt.attach(fakeClient(groups));
    await rt.createGroup([CAROL, CAROL.toUpperCase()]);
    await rt.createGroup('ops', [BOB]);
    await rt.createGroup(undefined, [BOB]);
    await rt.createGroup('solo', []);
    expect(groups.calls).toEqual([
      `createGroup - ${CAROL}`,
      `createGroup ops ${BOB}`,
      `createGroup - ${BOB}`,
      'createGroup solo ',
    ]);
    await expect(rt.createGroup('ops', ['nope'])).rejects.toThrow(ArgumentError);
    await expect(rt.createGroup('ops', [SELF_ID])).rejects.toThrow(/is this bot/);
    await expect(rt.createGroup(' ', [BOB])).rejects.toThrow(/a group name has 1 to 128 characters/);
    await expect(
      (rt.createGroup as unknown as (n: string) => Promise<unknown>).call(rt, 'ops'),
    ).rejects.toThrow(/needs the members/);
    expect((await rt.groups()).map((g) => g.groupId)).toEqual([GROUP_ID]);
    await rt.detach();
  });

  test('a client without the group API: a ConfigError naming what to forward', async () => {
    const rt = new BotRuntime(new EchoBot());
    rt.attach({ ...fakeClient(fakeGroups()), createGroup: undefined });
    await expect(rt.createGroup([CAROL])).rejects.toThrow(
      /needs a client with groups: .*forward createGroup, addToGroup, removeFromGroup, leaveGroup, sendToGroup, group, groups/,
    );
    await rt.detach();
  });
});

@Bot({ name: 'Greeter' })
class Greeter {
  readonly events: string[] = [];

  @OnJoin()
  async joined(ctx: MembershipContext): Promise<void> {
    this.events.push(
      `join ${ctx.conversation.kind} ${ctx.userId.slice(0, 4)} by ${ctx.invitedBy?.slice(0, 4) ?? '-'} group ${ctx.group?.members.length ?? '-'}`,
    );
    await ctx.reply(`hello ${ctx.conversation.kind === 'group' ? ctx.conversation.name : 'you'}`);
  }

  @OnLeave()
  async left(ctx: MembershipContext): Promise<void> {
    this.events.push(`leave ${ctx.reason} group ${ctx.group === undefined ? 'gone' : 'still'}`);
    await ctx.reply('anyone there?');
  }

  @OnMembers()
  members(ctx: MembersContext): void {
    this.events.push(
      `members +${ctx.added.map((u) => u.slice(0, 4)).join(',')} -${ctx.removed.map((u) => u.slice(0, 4)).join(',')} now ${ctx.group?.members.length}`,
    );
  }
}

type Handler = (m: ReceivedMessage, reply: (r: unknown) => void, tx: unknown) => Promise<void>;

/** A client whose 'group', 'session' and 'message' events the test fires by hand. */
function fakeClient(groups: FakeGroups) {
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

describe('@OnJoin, @OnLeave and @OnMembers on group events', () => {
  test('decorators record their metadata', () => {
    const meta = readBotMetadata(Greeter);
    expect(meta.join).toEqual(['joined']);
    expect(meta.leave).toEqual(['left']);
    expect(meta.members).toEqual(['members']);
  });

  test('invited → @OnJoin with the inviter and the group, replying to the group', async () => {
    const groups = fakeGroups();
    const bot = new Greeter();
    const rt = new BotRuntime(bot);
    const client = fakeClient(groups);
    rt.attach(client);
    const joined: GroupEvent = {
      kind: 'joined',
      groupId: GROUP_ID,
      topicId: TOPIC_ID,
      invitedBy: ALICE,
      members: [ALICE, SELF_ID as UserIdHex],
    };
    client.emit('group', joined);
    // Deferred past the emitting event; stop() waits for it.
    expect(bot.events).toEqual([]);
    await rt.stop();
    expect(bot.events).toEqual(['join group b0b0 by a11c group 3']);
    expect(groups.calls).toEqual(['sendToGroup ffff hello team']);
    await rt.detach();
    expect(client.listenerCount('group')).toBe(0);
  });

  test('created by the bot → @OnJoin without an inviter', async () => {
    const groups = fakeGroups();
    const bot = new Greeter();
    const rt = new BotRuntime(bot);
    const client = fakeClient(groups);
    rt.attach(client);
    client.emit('group', { kind: 'created', groupId: GROUP_ID, topicId: TOPIC_ID, members: [SELF_ID] });
    await rt.stop();
    expect(bot.events).toEqual(['join group b0b0 by - group 3']);
    await rt.detach();
  });

  test('removed → @OnLeave, whose reply is refused (the group is gone); members → @OnMembers', async () => {
    const groups = fakeGroups();
    const bot = new Greeter();
    const logged: string[] = [];
    const rt = new BotRuntime(bot, { logger: captureErrors(logged) });
    const client = fakeClient(groups);
    rt.attach(client);
    client.emit('group', { kind: 'members', groupId: GROUP_ID, added: [BOB], removed: [CAROL], epoch: 4n });
    client.emit('group', { kind: 'left', groupId: GROUP_ID, topicId: TOPIC_ID, reason: 'removed' });
    client.emit('group', { kind: 'rejoined', groupId: GROUP_ID, topicId: TOPIC_ID, epoch: 5n });
    await rt.stop();
    expect(bot.events).toEqual(['members +b0b0 -ca20 now 3', 'leave removed group gone']);
    expect(groups.calls).toEqual([]);
    expect(logged).toEqual([expect.stringMatching(/@OnLeave handler failed: .*no longer in group/)]);
    await rt.detach();
  });

  test('a direct first contact still runs @OnJoin; its reply goes to the peer', async () => {
    const groups = fakeGroups();
    const bot = new Greeter();
    const rt = new BotRuntime(bot);
    const client = fakeClient(groups);
    rt.attach(client);
    client.emit('session', { peer: ALICE, groupId: 'e'.repeat(64), role: 'joiner' });
    await rt.stop();
    expect(bot.events).toEqual(['join direct a11c by - group -']);
    expect(client.sent).toEqual([[ALICE, 'hello you']]);
    await rt.detach();
  });

  test('ctx.group in @OnJoin changes membership at once', async () => {
    const groups = fakeGroups();
    @Bot({ name: 'Recruiter' })
    class Recruiter {
      @OnJoin()
      async joined(ctx: MembershipContext): Promise<void> {
        await ctx.group?.add(BOB);
      }
    }
    const c = collector(groups.api);
    await new BotRuntime(new Recruiter()).handleMembership(
      {
        kind: 'join',
        userId: SELF_ID as UserIdHex,
        conversation: { kind: 'group', id: GROUP_ID, groupId: GROUP_ID, topicId: TOPIC_ID },
      },
      c.deps,
    );
    expect(groups.calls).toEqual([`addToGroup ffff ${BOB}`]);
  });
});

describe('a non-command message in a group', () => {
  test('reaches @OnMessage handlers, which can tell groups apart', async () => {
    @Bot({ name: 'Listener' })
    class Listener {
      @OnMessage((ctx) => ctx.conversation.kind === 'direct')
      direct(): string {
        return 'direct only';
      }
    }
    const rt = new BotRuntime(new Listener());
    const c = collector();
    await rt.handle(textMessage('hello all', { kind: 'group' }), c.reply, c.deps);
    expect(c.replies).toEqual([]);
    await rt.handle(textMessage('hello', { kind: 'direct' }), c.reply, c.deps);
    expect(c.texts()).toEqual(['direct only']);
  });
});

function captureErrors(out: string[]): NonNullable<ConstructorParameters<typeof BotRuntime>[1]>['logger'] {
  const make = (): unknown => ({
    child: () => make(),
    error: (obj: { err?: Error }, msg?: string) => out.push(`${msg}: ${obj.err?.message}`),
    warn: () => undefined,
    info: () => undefined,
    debug: () => undefined,
  });
  return make() as NonNullable<ConstructorParameters<typeof BotRuntime>[1]>['logger'];
}
