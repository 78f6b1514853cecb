/**
 * A bot in N-way groups end to end (PROTOCOL.md §9): real peers create groups with the bot, talk to
 * it there and change membership, through a real broker, against the bot's SQLite store.
 */
import {
  Bot,
  OnCommand,
  OnJoin,
  OnLeave,
  OnMembers,
  type BotContext,
  type MembersContext,
  type MembershipContext,
} from '../../framework/bot/index.js';
import type { UserIdHex } from '../../framework/relay/brand.js';
import { createTestHarness, type TestHarness, type TestPeer } from '../../framework/testing/index.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';

@Bot({ name: 'groupie', description: 'works in groups' })
class GroupieBot {
  readonly joined: Array<{ groupId: string; invitedBy: string | undefined }> = [];
  readonly left: Array<{ groupId: string; reason: string | undefined }> = [];
  readonly changes: Array<{ groupId: string; added: string[]; removed: string[] }> = [];

  @OnCommand('echo', { args: '<text...>', description: 'repeats the text' })
  echo(ctx: BotContext<{ text: string }>): string {
    return ctx.args.text;
  }

  @OnCommand('members', { description: 'who is in this group' })
  members(ctx: BotContext): string {
    return ctx.group ? [...ctx.group.members].sort().join(',') : 'not a group';
  }

  @OnCommand('kick', { args: '<who:user>', guard: 'group-admin', description: 'removes a member' })
  kick(ctx: BotContext<{ who: UserIdHex }>): string {
    void ctx.group!.remove(ctx.args.who);
    return `removing ${ctx.args.who}`;
  }

  @OnCommand('team', { args: '<name> <who:user>', description: 'a new group with you and someone' })
  async team(ctx: BotContext<{ name: string; who: UserIdHex }>): Promise<string> {
    const g = await ctx.bot.createGroup(ctx.args.name, [ctx.sender, ctx.args.who]);
    return `created ${g.groupId}`;
  }

  @OnJoin()
  async hello(ctx: MembershipContext): Promise<void> {
    if (ctx.conversation.kind !== 'group') return;
    this.joined.push({ groupId: ctx.conversation.groupId, invitedBy: ctx.invitedBy });
    // A group the bot created has no members listening yet: they subscribe when they join.
    if (ctx.invitedBy !== undefined) {
      await ctx.reply(
        `hello ${ctx.conversation.name ?? 'all'}, I am ${ctx.bot.name}: try /help@${ctx.bot.name}`,
      );
    }
  }

  @OnLeave()
  bye(ctx: MembershipContext): void {
    if (ctx.conversation.kind === 'group')
      this.left.push({ groupId: ctx.conversation.groupId, reason: ctx.reason });
  }

  @OnMembers()
  changed(ctx: MembersContext): void {
    this.changes.push({
      groupId: ctx.conversation.groupId,
      added: [...ctx.added],
      removed: [...ctx.removed],
    });
  }
}

let broker: TestBroker;
let h: TestHarness;
const bot = new GroupieBot();
let alice: TestPeer;
let bob: TestPeer;

beforeAll(async () => {
  broker = await getTestBroker();
  h = await createTestHarness(bot, { brokerUrl: broker.url });
  alice = await h.peer();
  bob = await h.peer();
});

afterAll(async () => {
  await h?.close();
  await broker?.close();
});

async function eventually(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The bot's answer to `text`, found by reply_to: several peers hear every answer in a group. */
async function askGroup(peer: TestPeer, groupId: string, text: string): Promise<string> {
  const sent = await peer.sendToGroup(groupId, text);
  return (await peer.groupReplyTo(groupId, sent.id)).content;
}

describe('a group created by a peer, with the bot invited', () => {
  let groupId: string;

  beforeAll(async () => {
    groupId = (await alice.createGroup({ name: 'crew' })).groupId;
  });

  test('@OnJoin runs with the inviter and greets the group', async () => {
    const greeting = await alice.nextGroupMessage(groupId);
    // The group's name came with the invitation (InnerPayload key 11).
    expect(greeting.content).toBe('hello crew, I am groupie: try /help@groupie');
    expect(greeting.replyTo).toBeUndefined();
    expect(bot.joined).toContainEqual({ groupId, invitedBy: alice.userId });
  });

  test('/echo@groupie is answered in the group with reply_to; by name in any case, or by user id', async () => {
    const sent = await alice.sendToGroup(groupId, '/echo@groupie hi there');
    const r = await alice.groupReplyTo(groupId, sent.id);
    expect(r).toMatchObject({ content: 'hi there', replyTo: sent.id, from: h.bot.userId, groupId });
    expect(await askGroup(alice, groupId, '/Echo@GROUPIE loud')).toBe('loud');
    expect(await askGroup(alice, groupId, `/echo@${h.bot.userId} by id`)).toBe('by id');
    // Nothing came to alice's inbox: group commands are answered on the group's topic.
    expect(alice.replies).toEqual([]);
  });

  test('/echo@otherbot is ignored without a word; a bare /echo is answered', async () => {
    await alice.sendToGroup(groupId, '/echo@otherbot not for you');
    await alice.sendToGroup(groupId, '/nosuchcommand');
    // The group's messages are handled in order, so this answer comes after the two above.
    expect(await askGroup(alice, groupId, '/echo bare')).toBe('bare');
    const fromBot = alice.groupMessages(groupId).filter((m) => m.from === h.bot.userId);
    expect(fromBot.map((m) => m.content)).not.toContain('not for you');
    expect(fromBot.map((m) => m.content).join('\n')).not.toMatch(/unknown command/);
    expect(await askGroup(alice, groupId, '/nosuchcommand@groupie')).toBe(
      'unknown command /nosuchcommand — try /help@groupie',
    );
  });

  test('/help in a group lists the /cmd@groupie forms', async () => {
    const help = (await askGroup(alice, groupId, '/help')).split('\n');
    expect(help).toEqual(
      expect.arrayContaining(['groupie — works in groups', '/echo@groupie <text…> — repeats the text']),
    );
  });

  test('after an add, ctx.group.members lists everyone and @OnMembers saw the change', async () => {
    await alice.client.addToGroup(groupId, [bob.userId]);
    await bob.waitForGroup(groupId);
    await eventually(
      () => bot.changes.some((c) => c.groupId === groupId && c.added.includes(bob.userId)),
      'the bot seeing bob added',
    );
    const everyone = [alice.userId, bob.userId, h.bot.userId].sort().join(',');
    expect(await askGroup(alice, groupId, '/members@groupie')).toBe(everyone);
    // bob, a member now, hears the bot too.
    expect(await askGroup(bob, groupId, '/echo@groupie from bob')).toBe('from bob');
  });

  test("guard 'group-admin': a plain member is refused, the group's committer is obeyed", async () => {
    expect(await askGroup(bob, groupId, `/kick@groupie ${alice.userId}`)).toBe(
      "only the group's committer or an admin of this bot may use /kick",
    );
    // alice created the group, so she is its committer.
    expect(await askGroup(alice, groupId, `/kick@groupie ${bob.userId}`)).toBe(`removing ${bob.userId}`);
    await eventually(
      () => bob.groupEvents.some((e) => e.kind === 'left' && e.groupId === groupId),
      'bob being removed',
    );
    await alice.waitForGroup(groupId, (g) => g.members.length === 2);
  });

  test('removed from the group → @OnLeave', async () => {
    await alice.client.removeFromGroup(groupId, [h.bot.userId]);
    await eventually(() => bot.left.some((l) => l.groupId === groupId), 'the bot leaving');
    expect(bot.left).toContainEqual({ groupId, reason: 'removed' });
  });
});

describe('groups created by the bot', () => {
  test('runtime.createGroup with two peers: both join and the bot answers there', async () => {
    const made = await h.bot.runtime.createGroup('ops', [alice.userId, bob.userId]);
    expect(made.name).toBe('ops');
    expect(made.isCommitter).toBe(true);
    expect(made.members.map((m) => m.userId).sort()).toEqual([alice.userId, bob.userId, h.bot.userId].sort());
    await alice.waitForGroup(made.groupId);
    await bob.waitForGroup(made.groupId);
    expect(await askGroup(alice, made.groupId, '/echo hello ops')).toBe('hello ops');
    expect((await bob.nextGroupMessage(made.groupId)).content).toBe('hello ops');
    expect(bot.joined).toContainEqual({ groupId: made.groupId, invitedBy: undefined });
  });

  test('ctx.bot.createGroup from a command in a direct chat', async () => {
    await alice.send(`/team plans ${bob.userId}`);
    const answer = (await alice.nextReply()).content;
    expect(answer).toMatch(/^created [0-9a-f]{64}$/);
    const groupId = answer.slice('created '.length);
    await bob.waitForGroup(groupId);
    await alice.waitForGroup(groupId);
    expect((await h.bot.client.group(groupId))?.name).toBe('plans');
    expect(await askGroup(bob, groupId, '/members@groupie')).toBe(
      [alice.userId, bob.userId, h.bot.userId].sort().join(','),
    );
  });
});
