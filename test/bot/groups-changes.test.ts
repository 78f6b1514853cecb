/** Groups in the bot runtime: membership changes and group creation from handlers (see groups.test.ts). */
import { Bot, BotRuntime, OnCommand, OnError, type BotContext } from '../../framework/bot/index.js';
import type { UserIdHex } from '../../framework/relay/brand.js';
import { ArgumentError, HandlerError } from '../../framework/relay/errors.js';
import { ALICE, BOB, CAROL, GROUP_ID, SELF_ID, collector, fakeGroups, textMessage } from './helpers.js';
import { EchoBot, fakeClient, settle, setup } from './group-helpers.js';

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
