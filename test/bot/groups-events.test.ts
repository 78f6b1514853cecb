/** Groups in the bot runtime: @OnJoin, @OnLeave, @OnMembers and plain messages in a group (see groups.test.ts). */
import {
  Bot,
  BotRuntime,
  OnJoin,
  OnLeave,
  OnMembers,
  OnMessage,
  readBotMetadata,
  type GroupEvent,
  type MembersContext,
  type MembershipContext,
} from '../../framework/bot/index.js';
import type { UserIdHex } from '../../framework/relay/brand.js';
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
} from './helpers.js';
import { fakeClient } from './group-helpers.js';

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
