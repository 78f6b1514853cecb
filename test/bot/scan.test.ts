/** The scanner alone: bot instances → BotPlan, without a runtime, a client or a message. */
import {
  Bot,
  groupAdmin,
  namedGuard,
  OnCommand,
  OnError,
  OnJoin,
  OnLeave,
  OnMembers,
  OnMessage,
  scanBots,
  commandIndex,
  type BotContext,
} from '../../framework/bot/index.js';
import { ConfigError } from '../../framework/relay/errors.js';
import { ALICE } from './helpers.js';

const isAlice = (ctx: BotContext): boolean => ctx.sender === ALICE;
const admin = (): boolean => true;

@Bot({ name: 'Planned', description: 'a bot to plan', groupCommands: 'addressed-only' })
class Planned {
  calls: string[] = [];

  @OnCommand('remind', { aliases: ['r'], args: '<minutes:int> <text...>', description: 'later' })
  remind(): string {
    this.calls.push('remind');
    return 'ok';
  }

  @OnCommand('ban', { guard: 'admin' })
  ban(): void {}

  @OnCommand('unban', { guard: namedGuard('admin') })
  unban(): void {}

  @OnCommand('kick', { guard: 'group-admin' })
  kick(): void {}

  @OnCommand('evict', { guard: groupAdmin })
  evict(): void {}

  @OnCommand('peek', { guard: isAlice })
  peek(): void {}

  @OnMessage(/hi/)
  hi(): void {}

  @OnJoin()
  joined(): void {}

  @OnLeave()
  left(): void {}

  @OnMembers()
  members(): void {}

  @OnError()
  failed(): void {}
}

class Extra {
  @OnCommand('extra')
  extra(): void {}
}

describe('scanBots', () => {
  test('names, commands in declaration order with /help last, arg specs and usage', () => {
    const plan = scanBots(new Planned(), { guards: { admin } });
    expect(plan.name).toBe('Planned');
    expect(plan.description).toBe('a bot to plan');
    expect(plan.groupCommands).toBe('addressed-only');
    expect(plan.handlerTimeoutMs).toBe(10_000);
    expect(plan.commands.map((c) => c.name)).toEqual([
      'remind',
      'ban',
      'unban',
      'kick',
      'evict',
      'peek',
      'help',
    ]);
    const remind = plan.commands[0]!;
    expect(remind.aliases).toEqual(['r']);
    expect(remind.args?.map((a) => a.name)).toEqual(['minutes', 'text']);
    expect(remind.usage).toBe('usage: /remind <minutes:int> <text…>');
    expect(plan.commands.at(-1)!.handler).toBeUndefined();
    expect(commandIndex(plan).get('r')).toBe(remind);
    expect(plan.commandInfos.map((c) => [c.name, c.guarded])).toEqual([
      ['remind', false],
      ['ban', true],
      ['unban', true],
      ['kick', true],
      ['evict', true],
      ['peek', true],
      ['help', false],
    ]);
  });

  test('guards come out typed: named ones resolved, group-admin built in, functions kept', () => {
    const plan = scanBots(new Planned(), { guards: { admin } });
    const guard = (name: string): unknown => plan.commands.find((c) => c.name === name)!.guard;
    expect(guard('ban')).toEqual({ kind: 'check', check: admin, name: 'admin' });
    expect(guard('unban')).toEqual({ kind: 'check', check: admin, name: 'admin' });
    expect(guard('kick')).toEqual({ kind: 'group-admin' });
    expect(guard('evict')).toEqual({ kind: 'group-admin' });
    expect(guard('peek')).toEqual({ kind: 'check', check: isAlice });
    expect(guard('remind')).toBeUndefined();
  });

  test('handlers are bound to their instance; membership handlers by kind; one @OnError', async () => {
    const bot = new Planned();
    const plan = scanBots([bot, new Extra()], { guards: { admin } });
    expect(await plan.commands[0]!.handler!()).toBe('ok');
    expect(bot.calls).toEqual(['remind']);
    expect(plan.commands.map((c) => c.name)).toContain('extra');
    expect(plan.messages).toHaveLength(1);
    expect(plan.messages[0]!.filter).toEqual(/hi/);
    expect(Object.fromEntries(Object.entries(plan.membership).map(([k, v]) => [k, v.length]))).toEqual({
      join: 1,
      leave: 1,
      members: 1,
    });
    expect(plan.onError).toBeInstanceOf(Function);
  });

  test('options: name, groupCommands, time limit, admins, help off', () => {
    const plan = scanBots(new Planned(), {
      name: 'other',
      groupCommands: 'all',
      handlerTimeoutMs: 50,
      guards: { admin },
      admins: [ALICE.toUpperCase()],
      help: false,
    });
    expect([plan.name, plan.groupCommands, plan.handlerTimeoutMs]).toEqual(['other', 'all', 50]);
    expect([...plan.admins]).toEqual([ALICE]);
    expect(plan.commands.map((c) => c.name)).not.toContain('help');
  });

  test('every whole-bot mistake is a ConfigError naming the fix, found here', () => {
    const bad = (f: () => unknown, message: RegExp): void => {
      expect(f).toThrow(ConfigError);
      expect(f).toThrow(message);
    };
    bad(() => scanBots([]), /at least one bot instance/);
    bad(() => scanBots(new Planned()), /pass \{ guards: \{ admin: \(ctx\) => … \} \}/);
    bad(
      () => scanBots(new Planned(), { guards: { admin, 'group-admin': admin } }),
      /guards.group-admin is built in/,
    );
    bad(
      () => scanBots([new Planned(), new Extra(), new Extra()], { guards: { admin } }),
      /\/extra is declared by two/,
    );
    bad(() => scanBots(new Extra()), /add @Bot\(\{ name \}\)/);
    bad(() => scanBots({}), /has no @Bot or handler decorators/);
    bad(() => scanBots(Planned as unknown as object), /has no @Bot or handler decorators|instances/);
    bad(() => scanBots(new Planned(), { guards: { admin }, handlerTimeoutMs: 0 }), /handlerTimeoutMs/);
    bad(
      () => scanBots(new Planned(), { guards: { admin }, name: 'bad name' }),
      /bot name "bad name" is invalid/,
    );
    bad(
      () => scanBots(new Planned(), { guards: { admin }, groupCommands: 'some' as 'all' }),
      /groupCommands "some" is invalid/,
    );
    bad(() => scanBots(new Planned(), { guards: { admin }, admins: ['alice'] }), /is not a user id/);
    @Bot({ name: 'Two' })
    class Two {
      @OnError()
      a(): void {}
    }
    bad(
      () => scanBots([new Planned(), new Two()], { guards: { admin }, name: 'x' }),
      /more than one @OnError/,
    );
  });

  test('a user /help (or alias help) replaces the built-in one', () => {
    @Bot({ name: 'Helpful' })
    class Helpful {
      @OnCommand('about', { aliases: ['help'] })
      about(): string {
        return 'mine';
      }
    }
    expect(scanBots(new Helpful()).commands.map((c) => c.name)).toEqual(['about']);
  });
});
