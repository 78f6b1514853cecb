/**
 * Command lines (PROTOCOL.md §8, §9 "Addressing"): `/name args…` or `/name@target args…`.
 *
 * Everything here is one left-to-right pass with no backtracking, so cost is linear in the line
 * length whatever the input; the only exception a caller can see is ParseError.
 *
 * Quoting: "double" and 'single' quotes group words; a backslash escapes the next character inside
 * either kind of quote and outside them (unlike a POSIX shell, so `'it\'s'` works in chat); quoted
 * parts join with adjacent text (`a"b c"` is one word `ab c`); `""` is an empty word; a lone
 * trailing backslash is kept literally.
 */
import { asciiLower, convertArg, usageLine, type ArgSpec, type Args } from './args.js';
import { ParseError, quoteForUser } from './errors.js';

export const MAX_COMMAND_NAME_LENGTH = 32;
export const MAX_TARGET_LENGTH = 64;

/** The command word of a message: its name and, for `/cmd@name`, the bot it addresses. */
export interface CommandHead {
  /** Lowercased: phones capitalise the first letter of a message. */
  readonly name: string;
  /** The text after `@`, as written; undefined for a bare command. */
  readonly target: string | undefined;
  /** Everything after the head, untouched. */
  readonly argsText: string;
}

const SPACE = /\s/;

function isSpace(c: string): boolean {
  return c === ' ' || (c !== '' && SPACE.test(c));
}

function isNameChar(code: number): boolean {
  return (
    (code >= 0x61 && code <= 0x7a) ||
    (code >= 0x41 && code <= 0x5a) ||
    (code >= 0x30 && code <= 0x39) ||
    code === 0x5f
  );
}

function isTargetChar(code: number): boolean {
  return isNameChar(code) || code === 0x2d;
}

/** C0 controls other than tab, LF and CR, DEL and C1 controls: never meaningful in a command. */
function isControl(code: number): boolean {
  return (code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) || (code >= 0x7f && code <= 0x9f);
}

/** Returns undefined for text that is not a command at all (does not start with `/`). */
export function parseCommandHead(text: string): CommandHead | undefined {
  if (!text.startsWith('/')) return undefined;
  let i = 1;
  while (i < text.length && isNameChar(text.charCodeAt(i))) i++;
  const name = text.slice(1, i);
  if (name === '') throw new ParseError('expected a command name after "/"');
  if (name.length > MAX_COMMAND_NAME_LENGTH) {
    throw new ParseError(`a command name has at most ${MAX_COMMAND_NAME_LENGTH} characters`);
  }
  let target: string | undefined;
  if (text[i] === '@') {
    const start = ++i;
    while (i < text.length && isTargetChar(text.charCodeAt(i))) i++;
    target = text.slice(start, i);
    if (target === '') throw new ParseError(`expected a bot name after "/${name}@"`);
    if (target.length > MAX_TARGET_LENGTH) {
      throw new ParseError(`a bot name has at most ${MAX_TARGET_LENGTH} characters`);
    }
  }
  if (i < text.length && !isSpace(text[i]!)) {
    throw new ParseError(
      `a command is "/" and a name of letters, digits or _, then a space; ${quoteForUser(text.slice(0, i + 1))} is not`,
    );
  }
  return { name: asciiLower(name), target, argsText: text.slice(i) };
}

/**
 * PROTOCOL.md §9: `/cmd@NAME` is ours when NAME is our configured name (ASCII case-insensitive) or
 * our user id; a bare `/cmd` is for every bot that has it.
 */
export function isAddressedTo(head: CommandHead, self: { name: string; userId: string }): boolean {
  if (head.target === undefined) return true;
  const t = asciiLower(head.target);
  return t === asciiLower(self.name) || t === asciiLower(self.userId);
}

/** Whether a bot answers bare commands in groups: every one it has (the default), or only `/cmd@it`. */
export type GroupCommandMode = 'all' | 'addressed-only';

/** The values of BotOptions.groupCommands: answer every command, or only those addressed to this bot. */
export const GROUP_COMMAND_MODES: readonly GroupCommandMode[] = ['all', 'addressed-only'];

/**
 * Who a command line is for, from this bot's point of view: 'addressed' (`/cmd@us`), 'bare' (no
 * target, ours to answer) or 'ignore' (another bot's, or a bare command in a group when the bot
 * answers only addressed ones there). An ignored command gets no answer at all, not even "unknown
 * command": in a group it belongs to someone else.
 */
export function commandAudience(
  head: CommandHead,
  self: { name: string; userId: string },
  conversation: 'direct' | 'group',
  groupCommands: GroupCommandMode = 'all',
): 'addressed' | 'bare' | 'ignore' {
  if (head.target !== undefined) return isAddressedTo(head, self) ? 'addressed' : 'ignore';
  return conversation === 'group' && groupCommands === 'addressed-only' ? 'ignore' : 'bare';
}

/** Hands out words one at a time so a rest-of-line argument can take the raw remainder. */
export class ArgLexer {
  private pos = 0;

  constructor(private readonly text: string) {
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (isControl(code)) {
        throw new ParseError(
          `control character U+${code.toString(16).padStart(4, '0').toUpperCase()} in the command`,
        );
      }
    }
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && isSpace(this.text[this.pos]!)) this.pos++;
  }

  atEnd(): boolean {
    this.skipSpace();
    return this.pos >= this.text.length;
  }

  /** The remainder verbatim, without surrounding white space; '' at the end. */
  rest(): string {
    this.skipSpace();
    const out = this.text.slice(this.pos).trimEnd();
    this.pos = this.text.length;
    return out;
  }

  /** The next word with quotes and escapes resolved, or undefined at the end. */
  next(): string | undefined {
    if (this.atEnd()) return undefined;
    const { text } = this;
    const parts: string[] = [];
    let quote: string | undefined;
    let start = this.pos;
    let i = this.pos;
    for (; i < text.length; i++) {
      const c = text[i]!;
      if (quote === undefined && isSpace(c)) break;
      if (c === '\\' && i + 1 < text.length) {
        parts.push(text.slice(start, i));
        start = ++i; // the escaped character starts the next slice
      } else if (quote === undefined && (c === '"' || c === "'")) {
        parts.push(text.slice(start, i));
        quote = c;
        start = i + 1;
      } else if (c === quote) {
        parts.push(text.slice(start, i));
        quote = undefined;
        start = i + 1;
      }
    }
    if (quote !== undefined) throw new ParseError(`unclosed ${quote} quote`);
    parts.push(text.slice(start, i));
    this.pos = i;
    return parts.join('');
  }
}

/**
 * Binds the words after the head to a command's specs. Every ParseError carries the usage line.
 */
export function parseArgs(command: string, specs: readonly ArgSpec[], argsText: string): Args {
  try {
    const lexer = new ArgLexer(argsText);
    const args: Args = {};
    for (const spec of specs) {
      if (spec.rest) {
        const rest = lexer.rest();
        if (rest === '' && !spec.optional) throw new ParseError(`missing ${spec.display}`);
        args[spec.name] = rest === '' ? undefined : rest;
        continue;
      }
      const word = lexer.next();
      if (word === undefined) {
        if (!spec.optional) throw new ParseError(`missing ${spec.display}`);
        args[spec.name] = spec.defaultValue;
        continue;
      }
      args[spec.name] = convertArg(spec, word);
    }
    if (!lexer.atEnd())
      throw new ParseError(`unexpected ${quoteForUser(lexer.rest())} after the last argument`);
    return args;
  } catch (e) {
    // The usage line is built only for a message that needs it, not for every command.
    if (e instanceof ParseError) throw new ParseError(e.reason, usageLine(command, specs));
    throw e;
  }
}
