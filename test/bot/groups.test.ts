/**
 * Groups in the bot runtime (PROTOCOL.md §9), with an in-memory stand-in for the client's group API:
 * addressing, commands in a group and the group-admin guard. groups-changes.test.ts covers
 * membership changes from handlers, groups-events.test.ts the group events.
 */
import { jest } from '@jest/globals';
import { Bot, BotRuntime, commandAudience, OnCommand, parseCommandHead } from '../../framework/bot/index.js';
import type { UserIdHex } from '../../framework/relay/brand.js';
import { ConfigError } from '../../framework/relay/errors.js';
import { helpPlugin } from '../../plugins/index.js';
import { BOB, CAROL, SELF_ID, collector, textMessage } from './helpers.js';
import { EchoBot, setup } from './group-helpers.js';

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
