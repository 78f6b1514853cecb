import fc from 'fast-check';
import {
  ArgLexer,
  isAddressedTo,
  parseArgs,
  parseArgSpec,
  parseCommandHead,
  ParseError,
  usageLine,
  type ArgsOf,
} from '../../framework/bot/index.js';
import type { UserIdHex } from '../../framework/relay/brand.js';

const REMIND = parseArgSpec('<minutes:int> <text...>', 'remind');

function words(text: string): string[] {
  const lexer = new ArgLexer(text);
  const out: string[] = [];
  for (let w = lexer.next(); w !== undefined; w = lexer.next()) out.push(w);
  return out;
}

function parseError(fn: () => unknown): ParseError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ParseError) return e;
    throw e;
  }
  throw new Error('expected a ParseError');
}

describe('command head', () => {
  test('plain text is not a command', () => {
    expect(parseCommandHead('hello /remind')).toBeUndefined();
    expect(parseCommandHead('')).toBeUndefined();
  });

  test('name, target and the untouched rest', () => {
    expect(parseCommandHead('/remind 5 tea')).toEqual({
      name: 'remind',
      target: undefined,
      argsText: ' 5 tea',
    });
    expect(parseCommandHead('/Remind@ReminderBot  5')).toEqual({
      name: 'remind',
      target: 'ReminderBot',
      argsText: '  5',
    });
    expect(parseCommandHead('/help')).toEqual({ name: 'help', target: undefined, argsText: '' });
    expect(parseCommandHead('/help\n5')).toEqual({ name: 'help', target: undefined, argsText: '\n5' });
  });

  test.each([
    ['/', /expected a command name/],
    ['/ remind', /expected a command name/],
    ['/@bot', /expected a command name/],
    ['/remind@', /expected a bot name after "\/remind@"/],
    ['/remind@ 5', /expected a bot name/],
    ['/usr/bin', /is not/],
    ['/remind!', /is not/],
    ['/remind@bot!x', /is not/],
    ['/' + 'a'.repeat(33), /at most 32/],
    ['/a@' + 'b'.repeat(65), /at most 64/],
  ])('%j is a ParseError', (text, message) => {
    const e = parseError(() => parseCommandHead(text));
    expect(e.reason).toMatch(message);
    expect(e.usage).toBeUndefined();
  });
});

describe('addressing (PROTOCOL.md §9)', () => {
  const self = { name: 'ReminderBot', userId: 'b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0' };
  const to = (text: string): boolean => isAddressedTo(parseCommandHead(text)!, self);

  test('a bare command is for us', () => expect(to('/remind 5 x')).toBe(true));
  test('our name, ASCII case-insensitive', () => {
    expect(to('/remind@ReminderBot 5 x')).toBe(true);
    expect(to('/remind@reminderbot')).toBe(true);
    expect(to('/remind@REMINDERBOT')).toBe(true);
  });
  test('our user id, either case', () => {
    expect(to('/remind@b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0')).toBe(true);
    expect(to('/remind@B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0')).toBe(true);
  });
  test('another bot is not us', () => {
    expect(to('/remind@OtherBot')).toBe(false);
    expect(to('/remind@ReminderBot2')).toBe(false);
    expect(to('/remind@c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0')).toBe(false);
  });
  test('only ASCII letters fold: the Kelvin sign is not K', () => {
    expect(
      isAddressedTo({ name: 'x', target: 'bot\u212A', argsText: '' }, { name: 'botk', userId: '' }),
    ).toBe(false);
  });
});

describe('words: quotes and escapes', () => {
  test.each([
    ['a b  c', ['a', 'b', 'c']],
    ['  leading and trailing \t\n', ['leading', 'and', 'trailing']],
    ['"two words" one', ['two words', 'one']],
    ["'single quoted' x", ['single quoted', 'x']],
    ['"it\'s" \'say "hi"\'', ["it's", 'say "hi"']],
    ["'it\\'s'", ["it's"]],
    ['"a \\"quoted\\" word"', ['a "quoted" word']],
    ['a\\ b', ['a b']],
    ['a"b c"d', ['ab cd']],
    ['"" x', ['', 'x']],
    ["''", ['']],
    ['back\\\\slash', ['back\\slash']],
    ['trailing\\', ['trailing\\']],
    ['ünïcödé 😀 "ж ж"', ['ünïcödé', '😀', 'ж ж']],
    ['nbsp\u00a0separated', ['nbsp', 'separated']],
  ])('%j', (text, expected) => expect(words(text)).toEqual(expected));

  test('unbalanced quotes', () => {
    expect(parseError(() => words('"open')).reason).toBe('unclosed " quote');
    expect(parseError(() => words("a 'open b")).reason).toBe("unclosed ' quote");
    expect(parseError(() => words('"escaped end\\"')).reason).toBe('unclosed " quote');
  });

  test('control characters and NUL are refused, tab/CR/LF are white space', () => {
    expect(parseError(() => new ArgLexer('a\u0000b')).reason).toBe('control character U+0000 in the command');
    expect(parseError(() => new ArgLexer('a\u001bb')).reason).toMatch(/U\+001B/);
    expect(parseError(() => new ArgLexer('a\u007f')).reason).toMatch(/U\+007F/);
    expect(parseError(() => new ArgLexer('a\u0085')).reason).toMatch(/U\+0085/);
    expect(words('a\tb\r\nc')).toEqual(['a', 'b', 'c']);
  });
});

describe('typed arguments', () => {
  test('the remind example', () => {
    expect(parseArgs('remind', REMIND, ' 5 buy "oat" milk  ')).toEqual({
      minutes: 5,
      text: 'buy "oat" milk',
    });
    expect(parseArgs('remind', REMIND, ' "5" x')).toEqual({ minutes: 5, text: 'x' });
  });

  test('the usage line', () => {
    expect(usageLine('remind', REMIND)).toBe('usage: /remind <minutes:int> <text…>');
    expect(usageLine('help', [])).toBe('usage: /help');
    const all = parseArgSpec('<who:user> <name> [n:number] [flag:boolean=yes] [rest…]', 'x');
    expect(usageLine('x', all)).toBe('usage: /x <who:user> <name> [n:number] [flag:boolean=yes] [rest…]');
  });

  test('errors carry the usage line', () => {
    const e = parseError(() => parseArgs('remind', REMIND, ' soon tea'));
    expect(e.usage).toBe('usage: /remind <minutes:int> <text…>');
    expect(e.reason).toBe('minutes: expected a whole number within ±9007199254740991, got "soon"');
    expect(parseError(() => parseArgs('remind', REMIND, '')).reason).toBe('missing <minutes:int>');
    expect(parseError(() => parseArgs('remind', REMIND, ' 5 ')).reason).toBe('missing <text…>');
  });

  test.each([
    ['int', '42', 42],
    ['int', '-7', -7],
    ['int', '+3', 3],
    ['int', '9007199254740991', 9007199254740991],
    ['number', '2.5', 2.5],
    ['number', '-.5', -0.5],
    ['number', '1e3', 1000],
    ['number', '7.', 7],
    ['boolean', 'YES', true],
    ['boolean', 'off', false],
    ['boolean', '1', true],
    ['user', 'A11CE000A11CE000A11CE000A11CE000', 'a11ce000a11ce000a11ce000a11ce000'],
    ['string', '"quoted words"', 'quoted words'],
  ])('%s %j', (type, word, value) => {
    const specs = parseArgSpec(`<v:${type}>`, 'x');
    expect(parseArgs('x', specs, ` ${word}`)).toEqual({ v: value });
  });

  test.each([
    ['int', '1.5', /whole number/],
    ['int', '9007199254740992', /whole number/],
    ['int', '9'.repeat(5000), /whole number/],
    ['int', '0x10', /whole number/],
    ['int', '', /whole number/],
    ['number', '1e999', /expected a number/],
    ['number', 'NaN', /expected a number/],
    ['number', 'Infinity', /expected a number/],
    ['number', '1.2.3', /expected a number/],
    ['boolean', 'maybe', /expected yes or no/],
    ['user', 'a11ce', /user id \(32 hex digits\)/],
    ['user', 'g'.repeat(32), /user id/],
  ])('%s rejects %j', (type, word, message) => {
    const specs = parseArgSpec(`<v:${type}>`, 'x');
    const e = parseError(() => parseArgs('x', specs, ` "${word}"`));
    expect(e.reason).toMatch(message);
    expect(e.reason.length).toBeLessThan(120); // the echo is truncated
  });

  test('optional, default and optional rest', () => {
    const specs = parseArgSpec('<name> [count:int=3] [loud:boolean] [note...]', 'x');
    expect(parseArgs('x', specs, ' tea')).toEqual({
      name: 'tea',
      count: 3,
      loud: undefined,
      note: undefined,
    });
    expect(parseArgs('x', specs, ' tea 5 no  with   spaces ')).toEqual({
      name: 'tea',
      count: 5,
      loud: false,
      note: 'with   spaces',
    });
    expect(parseArgs('x', parseArgSpec('[greeting=hello]', 'x'), '')).toEqual({ greeting: 'hello' });
  });

  test('too many arguments', () => {
    const e = parseError(() => parseArgs('x', parseArgSpec('<a>', 'x'), ' one two'));
    expect(e.reason).toBe('unexpected "two" after the last argument');
    expect(parseError(() => parseArgs('x', [], ' stray')).usage).toBe('usage: /x');
  });

  test('ArgsOf derives the argument types from the spec', () => {
    const remind: ArgsOf<'<minutes:int> <text...>'> = { minutes: 5, text: 'tea' };
    const all: ArgsOf<'<who:user> <name> [n:number] [flag:boolean=yes] [rest…]'> = {
      who: 'a'.repeat(32) as UserIdHex,
      name: 'x',
      n: undefined,
      flag: true,
      rest: undefined,
    };
    const none: ArgsOf<''> = {};
    // @ts-expect-error minutes is a number
    const wrong: ArgsOf<'<minutes:int>'> = { minutes: '5' };
    // @ts-expect-error a default makes the value always present
    const missing: ArgsOf<'[n:int=1]'> = { n: undefined };
    expect([remind, all, none, wrong, missing]).toHaveLength(5);
  });
});

describe('hostile input never throws anything but ParseError', () => {
  const KIB64 = 64 * 1024;
  const specs = parseArgSpec('<a:int> [b:number] [c:user] [d:boolean] [e...]', 'x');
  const attempt = (text: string): void => {
    try {
      const head = parseCommandHead(text);
      if (head) parseArgs(head.name, specs, head.argsText);
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
    }
  };

  test.each([
    ['64 KiB of one word', '/x ' + 'a'.repeat(KIB64)],
    ['64 KiB of spaces', '/x' + ' '.repeat(KIB64)],
    ['64 KiB of quotes', '/x ' + '"'.repeat(KIB64)],
    ['64 KiB of backslashes', '/x ' + '\\'.repeat(KIB64)],
    ['64 KiB unbalanced quote', '/x 1 "' + 'a '.repeat(KIB64 / 2)],
    ['64 KiB number', '/x ' + '9'.repeat(KIB64)],
    ['64 KiB decimal', '/x 1 ' + '1'.repeat(KIB64) + 'x'],
    ['64 KiB of NULs', '/x ' + '\0'.repeat(KIB64)],
    ['64 KiB of @', '/x@' + '@'.repeat(KIB64)],
    ['64 KiB name', '/' + 'a'.repeat(KIB64)],
    ['lone surrogates', '/x "\ud800\udfff\udc00"'],
    ['/ alone', '/'],
    ['@ without a name', '/x@'],
  ])('%s', (_name, text) => {
    expect(() => attempt(text)).not.toThrow();
  });

  test('property: any string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        attempt('/x ' + s);
        attempt('/' + s);
      }),
      { numRuns: 2000 },
    );
  });

  test('property: quoting round-trips any word', () => {
    const quote = (w: string): string => `"${w.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
    const isControl = (code: number): boolean => code < 0x20 || (code >= 0x7f && code <= 0x9f);
    const printable = fc
      .string({ unit: 'grapheme', maxLength: 20 })
      .filter((w) => ![...w].some((ch) => isControl(ch.codePointAt(0)!)));
    fc.assert(
      fc.property(fc.array(printable, { maxLength: 8 }), (ws) => {
        expect(words(ws.map(quote).join(' '))).toEqual(ws);
      }),
    );
  });
});
