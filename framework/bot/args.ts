/**
 * Typed command arguments, declared with one compact string (the only form; it is also what the
 * usage line shows, so declaration and help cannot drift apart):
 *
 *   <name>            required string
 *   <name:type>       required, type is string | int | number | boolean | user
 *   [name:type]       optional, undefined when absent
 *   [name:type=dflt]  optional with a default (one word: defaults cannot contain spaces)
 *   <name...>         the rest of the line, verbatim (quotes kept); `…` works as well as `...`
 *   [name...]         optional rest of the line
 *
 * Items are separated by spaces; optional items follow required ones and a rest item comes last.
 * `ArgsOf<'<minutes:int> <text...>'>` is `{ minutes: number; text: string }`.
 */
import type { UserIdHex } from '../relay/brand.js';
import { ConfigError } from '../relay/errors.js';
import { ParseError, quoteForUser } from './errors.js';

/** The argument types a command's `args` spec may name (`<days:int>`). */
export const ARG_TYPES = ['string', 'int', 'number', 'boolean', 'user'] as const;
/** One of ARG_TYPES. */
export type ArgType = (typeof ARG_TYPES)[number];
/** A parsed argument: the type's value, or undefined for an absent optional one. */
export type ArgValue = string | number | boolean | undefined;
/** A command's parsed arguments by name (BotContext.args). */
export type Args = Record<string, ArgValue>;

/** One argument of a command's `args` spec, parsed from e.g. `[days:int=1]`. */
export interface ArgSpec {
  readonly name: string;
  readonly type: ArgType;
  readonly optional: boolean;
  readonly rest: boolean;
  /** Already converted; only set for `[name:type=default]`. */
  readonly defaultValue?: string | number | boolean;
  /** How the item reads in the usage line, e.g. `<text…>` or `[count:int=1]`. */
  readonly display: string;
}

// ---------------------------------------------------------------- type level

type ValueOfType<T extends string> = T extends 'int' | 'number'
  ? number
  : T extends 'boolean'
    ? boolean
    : T extends 'user'
      ? UserIdHex
      : T extends 'string'
        ? string
        : never;

type StripRest<B extends string> = B extends `${infer N}...` ? N : B extends `${infer N}…` ? N : B;

type NameAndValue<B extends string> =
  StripRest<B> extends `${infer N}:${infer T}`
    ? { name: N; value: ValueOfType<T> }
    : { name: StripRest<B>; value: string };

type Item<W extends string> = W extends `<${infer Body}>`
  ? NameAndValue<Body>
  : W extends `[${infer Body}=${string}]`
    ? NameAndValue<Body>
    : W extends `[${infer Body}]`
      ? { name: NameAndValue<Body>['name']; value: NameAndValue<Body>['value'] | undefined }
      : never;

type TrimLeft<S extends string> = S extends ` ${infer R}` ? TrimLeft<R> : S;

type Items<S extends string> =
  TrimLeft<S> extends `${infer W} ${infer R}`
    ? [Item<W>, ...Items<R>]
    : TrimLeft<S> extends ''
      ? []
      : [Item<TrimLeft<S>>];

/** The argument object a spec produces; a non-literal spec gives the loose `Args`. */
export type ArgsOf<S extends string> = string extends S
  ? Args
  : { [I in Items<S>[number] as I['name']]: I['value'] };

// ---------------------------------------------------------------- values

const INT = /^[+-]?[0-9]+$/;
// Unambiguous on purpose: every digit belongs to exactly one group, so a failing match cannot backtrack.
const NUMBER = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const USER_ID = /^[0-9a-fA-F]{32}$/;
const TRUE_WORDS = new Set(['true', 'yes', 'on', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', '0']);
/** Longer numerals are refused before conversion; no sensible int or number needs more. */
const MAX_NUMERAL_LENGTH = 400;

/** Lowercases A-Z only; String#toLowerCase maps some non-ASCII letters onto ASCII ones (K → k). */
export function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

/** Converts one word to the spec's type; the error text names the argument and what it expects. */
export function convertArg(spec: Pick<ArgSpec, 'name' | 'type'>, word: string): string | number | boolean {
  const got = quoteForUser(word);
  switch (spec.type) {
    case 'string':
      return word;
    case 'int': {
      const n = word.length <= MAX_NUMERAL_LENGTH && INT.test(word) ? Number(word) : NaN;
      if (!Number.isSafeInteger(n)) {
        throw new ParseError(
          `${spec.name}: expected a whole number within ±${Number.MAX_SAFE_INTEGER}, got ${got}`,
        );
      }
      return n;
    }
    case 'number': {
      const n = word.length <= MAX_NUMERAL_LENGTH && NUMBER.test(word) ? Number(word) : NaN;
      if (!Number.isFinite(n)) throw new ParseError(`${spec.name}: expected a number, got ${got}`);
      return n;
    }
    case 'boolean': {
      const w = asciiLower(word);
      if (TRUE_WORDS.has(w)) return true;
      if (FALSE_WORDS.has(w)) return false;
      throw new ParseError(`${spec.name}: expected yes or no, got ${got}`);
    }
    case 'user':
      if (!USER_ID.test(word))
        throw new ParseError(`${spec.name}: expected a user id (32 hex digits), got ${got}`);
      return asciiLower(word);
  }
}

// ---------------------------------------------------------------- spec parsing

const ITEM = /^(<|\[)([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]*))?(\.\.\.|…)?(?:=([^\]]*))?(>|\])$/;
const SPEC_HELP = 'write <name:type>, [name:type], [name:type=default] or <name...>';

function parseItem(word: string, command: string): ArgSpec {
  const m = ITEM.exec(word);
  if (!m)
    throw new ConfigError(`/${command}: cannot read ${JSON.stringify(word)} in the args spec; ${SPEC_HELP}`);
  const [, open, name, typeText, dots, dflt, close] = m as unknown as [
    string,
    string,
    string,
    string | undefined,
    string | undefined,
    string | undefined,
    string,
  ];
  if ((open === '<') !== (close === '>')) {
    throw new ConfigError(`/${command}: brackets of ${JSON.stringify(word)} do not match; ${SPEC_HELP}`);
  }
  const type = (typeText ?? 'string') as ArgType;
  if (!ARG_TYPES.includes(type)) {
    throw new ConfigError(
      `/${command}: unknown argument type ${JSON.stringify(typeText)} in ${word}; use one of ${ARG_TYPES.join(', ')}`,
    );
  }
  const rest = dots !== undefined;
  const optional = open === '[';
  if (rest && type !== 'string') {
    throw new ConfigError(`/${command}: ${word} takes the rest of the line, which is text; drop ":${type}"`);
  }
  if (dflt !== undefined && !optional) {
    throw new ConfigError(
      `/${command}: ${word} has a default but is required; write [${name}:${type}=${dflt}]`,
    );
  }
  if (dflt !== undefined && rest) {
    throw new ConfigError(
      `/${command}: ${word} cannot have a default; make it [${name}...] and handle undefined`,
    );
  }
  let defaultValue: string | number | boolean | undefined;
  if (dflt !== undefined) {
    try {
      defaultValue = convertArg({ name, type }, dflt);
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      throw new ConfigError(`/${command}: the default of ${word} is not a valid ${type} (${e.reason})`);
    }
  }
  const typed = type === 'string' ? name : `${name}:${type}`;
  const display = rest
    ? `${open}${name}…${close}`
    : `${open}${typed}${dflt !== undefined ? `=${dflt}` : ''}${close}`;
  return { name, type, optional, rest, display, ...(defaultValue !== undefined ? { defaultValue } : {}) };
}

/** Reads and checks an args spec at decoration time; errors say how to fix the spec. */
export function parseArgSpec(spec: string, command: string): readonly ArgSpec[] {
  const items = spec
    .split(/\s+/)
    .filter((w) => w !== '')
    .map((w) => parseItem(w, command));
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (seen.has(item.name))
      throw new ConfigError(`/${command}: argument ${item.name} is declared twice; rename one`);
    seen.add(item.name);
    if (item.rest && i !== items.length - 1) {
      throw new ConfigError(`/${command}: ${item.display} takes the rest of the line, so it must come last`);
    }
    const prev = items[i - 1];
    if (!item.optional && prev?.optional) {
      throw new ConfigError(
        `/${command}: required ${item.display} follows optional ${prev.display}; put optional arguments last`,
      );
    }
  });
  return items;
}

/** The `usage: /cmd <a> [b]` line shown when a command's arguments do not parse. */
export function usageLine(command: string, specs: readonly ArgSpec[]): string {
  return ['usage:', `/${command}`, ...specs.map((s) => s.display)].join(' ');
}
