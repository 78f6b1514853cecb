import {
  Bot,
  OnCommand,
  OnError,
  OnJoin,
  OnLeave,
  OnMembers,
  OnMessage,
  readBotMetadata,
  type BotContext,
} from '../../framework/bot/index.js';
import { ConfigError } from '../../framework/relay/errors.js';

const isAdmin = (ctx: BotContext): boolean => ctx.sender.startsWith('a');

@Bot({ name: 'ReminderBot', description: 'reminds you' })
class ReminderBot {
  @OnCommand('remind', { aliases: ['r'], description: 'set a reminder', args: '<minutes:int> <text...>' })
  remind(ctx: BotContext<{ minutes: number; text: string }>): string {
    return `in ${ctx.args.minutes}: ${ctx.args.text}`;
  }

  @OnCommand('ban', { guard: 'admin' })
  ban(): void {}

  @OnCommand('kick', { guard: isAdmin })
  kick(): void {}

  @OnMessage(/hello/gi)
  hello(): void {}

  @OnMessage()
  anything(): void {}

  @OnJoin()
  joined(): void {}

  @OnLeave()
  left(): void {}

  @OnError()
  failed(): void {}
}

@Bot({ name: 'EchoBot' })
class EchoBot {
  @OnCommand('echo', { args: '<text...>' })
  echo(ctx: BotContext<{ text: string }>): string {
    return ctx.args.text;
  }
}

describe('decorators record metadata', () => {
  test('@Bot and every method decorator', () => {
    const meta = readBotMetadata(ReminderBot);
    expect(meta.bot).toEqual({ name: 'ReminderBot', description: 'reminds you' });
    expect(meta.commands.map((c) => [c.name, c.method, c.aliases])).toEqual([
      ['remind', 'remind', ['r']],
      ['ban', 'ban', []],
      ['kick', 'kick', []],
    ]);
    const remind = meta.commands[0]!;
    expect(remind.description).toBe('set a reminder');
    expect(remind.argsSpec).toBe('<minutes:int> <text...>');
    expect(remind.args?.map((a) => [a.name, a.type, a.rest])).toEqual([
      ['minutes', 'int', false],
      ['text', 'string', true],
    ]);
    expect(meta.commands[1]!.guard).toBe('admin');
    expect(meta.commands[2]!.guard).toBe(isAdmin);
    expect(meta.messages.map((m) => m.method)).toEqual(['hello', 'anything']);
    expect(meta.join).toEqual(['joined']);
    expect(meta.leave).toEqual(['left']);
    expect(meta.error).toBe('failed');
  });

  test('a RegExp filter loses g and y so matching is not stateful', () => {
    const filter = readBotMetadata(ReminderBot).messages[0]!.filter as RegExp;
    expect(filter.flags).toBe('i');
    expect(filter.test('hello')).toBe(true);
    expect(filter.test('hello')).toBe(true);
  });

  test('two bot classes in one process never see each other', () => {
    expect(readBotMetadata(EchoBot).commands.map((c) => c.name)).toEqual(['echo']);
    expect(readBotMetadata(EchoBot).messages).toEqual([]);
    expect(readBotMetadata(ReminderBot).commands.map((c) => c.name)).not.toContain('echo');
  });

  test('metadata is not inherited and reading returns copies', () => {
    class Child extends EchoBot {}
    expect(readBotMetadata(Child).commands).toEqual([]);
    const meta = readBotMetadata(EchoBot);
    (meta.commands as unknown[]).length = 0;
    expect(readBotMetadata(EchoBot).commands).toHaveLength(1);
  });

  test('an undecorated class has empty metadata', () => {
    class Plain {}
    expect(readBotMetadata(Plain)).toEqual({
      bot: undefined,
      commands: [],
      messages: [],
      actions: [],
      reactions: [],
      attachments: [],
      join: [],
      leave: [],
      members: [],
      error: undefined,
    });
  });
});

describe('group decorators and options', () => {
  @Bot({ name: 'GroupBot', groupCommands: 'addressed-only' })
  class GroupBot {
    @OnCommand('kick', { guard: 'group-admin' })
    kick(): void {}

    @OnJoin()
    hello(): void {}

    @OnJoin()
    hello2(): void {}

    @OnLeave()
    bye(): void {}

    @OnMembers()
    changed(): void {}
  }

  test('@OnJoin, @OnLeave and @OnMembers record their methods in order; group-admin is kept by name', () => {
    const meta = readBotMetadata(GroupBot);
    expect(meta.bot).toEqual({ name: 'GroupBot', groupCommands: 'addressed-only' });
    expect(meta.join).toEqual(['hello', 'hello2']);
    expect(meta.leave).toEqual(['bye']);
    expect(meta.members).toEqual(['changed']);
    expect(meta.commands[0]!.guard).toBe('group-admin');
  });

  test('@OnMembers on a field or a static method is refused', () => {
    expect(() => OnMembers()({}, 'field', { value: 1 } as unknown as TypedPropertyDescriptor<never>)).toThrow(
      /@OnMembers on Object.field, which is not a method/,
    );
    expect(() => {
      class Static {
        @OnLeave()
        static bye(): void {}
      }
      return Static;
    }).toThrow(/@OnLeave on static Static.bye/);
  });

  test('@Bot groupCommands must be one of the modes', () => {
    expect(() => Bot({ name: 'x', groupCommands: 'mentions' as 'all' })).toThrow(
      /@Bot groupCommands "mentions" is invalid: use 'all' or 'addressed-only'/,
    );
  });
});

describe('decorators validate when applied', () => {
  const expectConfigError = (define: () => unknown, message: RegExp): void => {
    expect(define).toThrow(ConfigError);
    expect(define).toThrow(message);
  };

  test('bad command names and aliases', () => {
    expectConfigError(() => OnCommand('Remind'), /lowercase letters.*e\.g\. "remind"/);
    expectConfigError(() => OnCommand('re mind'), /invalid/);
    expectConfigError(() => OnCommand(''), /invalid/);
    expectConfigError(() => OnCommand('1st'), /starting with a letter/);
    expectConfigError(() => OnCommand('a'.repeat(33)), /1-32/);
    expectConfigError(() => OnCommand('ok', { aliases: ['O-K'] }), /alias "O-K" is invalid/);
    expectConfigError(() => OnCommand('ok', { aliases: ['ok'] }), /lists "ok" twice/);
  });

  test('duplicate commands or aliases within a class', () => {
    expectConfigError(() => {
      class Dup {
        @OnCommand('go')
        a(): void {}
        @OnCommand('go')
        b(): void {}
      }
      return Dup;
    }, /\/go is declared twice in Dup \(a and b\)/);
    expectConfigError(() => {
      class DupAlias {
        @OnCommand('start', { aliases: ['s'] })
        a(): void {}
        @OnCommand('stop', { aliases: ['s'] })
        b(): void {}
      }
      return DupAlias;
    }, /\/s is declared twice/);
  });

  test('the same command name in two classes is fine', () => {
    class A {
      @OnCommand('go')
      go(): void {}
    }
    class B {
      @OnCommand('go')
      go(): void {}
    }
    expect(readBotMetadata(A).commands).toHaveLength(1);
    expect(readBotMetadata(B).commands).toHaveLength(1);
  });

  test('bad args specs name the fix', () => {
    expectConfigError(
      () => OnCommand('x', { args: '<n:integer>' }),
      /unknown argument type "integer".*use one of string, int, number, boolean, user/,
    );
    expectConfigError(() => OnCommand('x', { args: '<text...> <n:int>' }), /must come last/);
    expectConfigError(() => OnCommand('x', { args: '[a] <b>' }), /put optional arguments last/);
    expectConfigError(() => OnCommand('x', { args: '<a> <a>' }), /declared twice/);
    expectConfigError(() => OnCommand('x', { args: '<a]' }), /brackets/);
    expectConfigError(() => OnCommand('x', { args: 'a' }), /write <name:type>/);
    expectConfigError(() => OnCommand('x', { args: '<n:int=3>' }), /write \[n:int=3\]/);
    expectConfigError(
      () => OnCommand('x', { args: '[n:int=three]' }),
      /default of \[n:int=three\] is not a valid int/,
    );
    expectConfigError(() => OnCommand('x', { args: '<n:int...>' }), /drop ":int"/);
    expectConfigError(() => OnCommand('x', { args: 5 as unknown as string }), /spec string/);
  });

  test('bad guards, filters and bot names', () => {
    expectConfigError(() => OnCommand('x', { guard: '' }), /guard must be/);
    expectConfigError(() => OnMessage('hi' as unknown as RegExp), /RegExp or a function/);
    expectConfigError(() => Bot({ name: 'my bot' }), /@Bot name "my bot" is invalid/);
    expectConfigError(() => Bot({ name: '' }), /invalid/);
    expectConfigError(() => Bot({ name: 'x'.repeat(65) }), /64 at most/);
  });

  test('@Bot twice, two @OnError, static methods, non-methods', () => {
    expectConfigError(() => {
      @Bot({ name: 'a' })
      @Bot({ name: 'b' })
      class Twice {}
      return Twice;
    }, /applied twice to Twice/);
    expectConfigError(() => {
      class TwoErrors {
        @OnError()
        a(): void {}
        @OnError()
        b(): void {}
      }
      return TwoErrors;
    }, /two @OnError methods \(a, b\)/);
    expectConfigError(() => {
      class Static {
        @OnCommand('go')
        static go(): void {}
      }
      return Static;
    }, /static Static.go: handlers must be instance methods/);
    expectConfigError(
      () => OnJoin()({}, 'field', { value: 42 } as unknown as TypedPropertyDescriptor<never>),
      /not a method/,
    );
  });
});

describe('@OnCommand checks the handler against the args spec at compile time', () => {
  test('matching, looser and mismatched annotations', () => {
    class Typed {
      @OnCommand('a', { args: '<minutes:int> [note...]' })
      exact(ctx: BotContext<{ minutes: number; note: string | undefined }>): number {
        return ctx.args.minutes;
      }

      @OnCommand('b', { args: '<minutes:int>' })
      loose(ctx: BotContext): unknown {
        return ctx.args.minutes;
      }

      // @ts-expect-error minutes is an int, not a string
      @OnCommand('c', { args: '<minutes:int>' })
      wrong(ctx: BotContext<{ minutes: string }>): string {
        return ctx.args.minutes;
      }
    }
    expect(readBotMetadata(Typed).commands).toHaveLength(3);
  });
});
