/**
 * The profile a KeyBundle may carry as key 7 (PROTOCOL.md §4, §8): UTF-8 JSON of at most 8 KiB,
 * `{"bot": true, "description": "…", "commands": [{"name", "args", "description"}]}`, covered by the
 * bundle signature, so a bot's claim to be a bot and its command menu are signed by its own identity.
 * Pure JSON codec; bundle.ts carries it in the CBOR map.
 */
import { ArgumentError, CodecError } from './errors.js';

/** Largest profile, in UTF-8 bytes of its JSON (§8). */
export const MAX_PROFILE_BYTES = 8 * 1024;

/** One command a profile offers, as a client may show it in a menu. */
export interface ProfileCommand {
  /** The command without its slash: `remind` for `/remind`. */
  name: string;
  /** The argument spec as the usage line shows it, e.g. `<minutes:int> <text…>`. */
  args?: string;
  description?: string;
}

/** What a user says about itself in its bundle: whether it is a bot, a description, its commands. */
export interface Profile {
  bot: boolean;
  description?: string;
  commands: readonly ProfileCommand[];
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function optionalString(o: Record<string, unknown>, key: string, where: string): string | undefined {
  const v = o[key];
  if (v !== undefined && typeof v !== 'string')
    throw new CodecError(`profile: ${where}"${key}" is not a string`);
  return v;
}

function command(c: unknown, i: number): ProfileCommand {
  if (typeof c !== 'object' || c === null || Array.isArray(c))
    throw new CodecError(`profile: commands[${i}] is not an object`);
  const o = c as Record<string, unknown>;
  const where = `commands[${i}].`;
  const name = optionalString(o, 'name', where);
  if (name === undefined || name.length === 0) throw new CodecError(`profile: ${where}"name" is missing`);
  const args = optionalString(o, 'args', where);
  const description = optionalString(o, 'description', where);
  return {
    name,
    ...(args !== undefined ? { args } : {}),
    ...(description !== undefined ? { description } : {}),
  };
}

/**
 * Parses a profile's JSON text; CodecError unless it is an object whose known fields have their
 * types (`bot` boolean, default false; `description` string; `commands` a list of objects with a
 * non-empty string `name`). Unknown fields are ignored, as in §8 content.
 */
export function parseProfile(text: string): Profile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new CodecError('profile is not JSON', { cause });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new CodecError('profile is not a JSON object');
  const o = parsed as Record<string, unknown>;
  if (o.bot !== undefined && typeof o.bot !== 'boolean')
    throw new CodecError('profile: "bot" is not true or false');
  const description = optionalString(o, 'description', '');
  if (o.commands !== undefined && !Array.isArray(o.commands))
    throw new CodecError('profile: "commands" is not a list');
  const commands = ((o.commands as unknown[] | undefined) ?? []).map(command);
  return { bot: o.bot === true, ...(description !== undefined ? { description } : {}), commands };
}

/** Parses profile bytes: UTF-8 (strict), at most 8 KiB, then parseProfile. */
export function decodeProfile(bytes: Uint8Array): Profile {
  if (bytes.length > MAX_PROFILE_BYTES) throw new CodecError(`profile is over ${MAX_PROFILE_BYTES} bytes`);
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch (cause) {
    throw new CodecError('profile is not UTF-8', { cause });
  }
  return parseProfile(text);
}

/**
 * The profile's JSON text, fields in a fixed order and absent ones left out; ArgumentError when it is
 * over 8 KiB (shorten the descriptions or offer fewer commands).
 */
export function formatProfile(p: Profile): string {
  const text = JSON.stringify({
    bot: p.bot,
    ...(p.description !== undefined ? { description: p.description } : {}),
    commands: p.commands.map((c) => {
      if (c.name.length === 0) throw new ArgumentError('profile: a command has an empty name');
      return {
        name: c.name,
        ...(c.args !== undefined ? { args: c.args } : {}),
        ...(c.description !== undefined ? { description: c.description } : {}),
      };
    }),
  });
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > MAX_PROFILE_BYTES) {
    throw new ArgumentError(
      `the profile is ${bytes} bytes of JSON, over the ${MAX_PROFILE_BYTES}-byte limit; shorten the descriptions or offer fewer commands`,
    );
  }
  return text;
}

/** The profile's JSON as UTF-8 bytes (formatProfile). */
export function encodeProfile(p: Profile): Uint8Array {
  return new TextEncoder().encode(formatProfile(p));
}
