/**
 * MLS application data (PROTOCOL.md §8): a UTF-8 JSON object {"content": text} with optional id,
 * reply_to and type. Unknown fields are ignored; anything else is not content.
 */
import { CodecError } from './errors.js';

/**
 * A chat message's application content (PROTOCOL.md §8): the text, an optional id and reply_to, and a type
 * ("text" unless the sender said otherwise).
 */
export interface AppContent {
  content: string;
  id?: string;
  replyTo?: string;
  /** Defaults to "text". */
  type: string;
}

const MAX_ID_LENGTH = 128;
const decoder = new TextDecoder('utf-8', { fatal: true });

export interface ContentEncodeOptions {
  /**
   * Group messages (PROTOCOL.md §8, §9) carry `"pad"`: spaces making the UTF-8 length a multiple of
   * this many bytes, since ts-mls's own padding cannot express a block size.
   */
  padTo?: number;
}

/**
 * UTF-8 JSON of the content, `reply_to` in wire spelling and a "text" type omitted; `padTo` pads with spaces
 * to a multiple of that many bytes (used for groups).
 */
export function encodeContent(
  c: { content: string; id?: string; replyTo?: string; type?: string },
  options: ContentEncodeOptions = {},
): Uint8Array {
  const obj: Record<string, string> = { content: c.content };
  if (c.id !== undefined) obj.id = c.id;
  if (c.replyTo !== undefined) obj.reply_to = c.replyTo;
  if (c.type !== undefined && c.type !== 'text') obj.type = c.type;
  const encoder = new TextEncoder();
  const block = options.padTo;
  if (block === undefined) return encoder.encode(JSON.stringify(obj));
  // `,"pad":""` adds 9 bytes before the spaces; spaces need no JSON escaping, one byte each.
  const unpadded = encoder.encode(JSON.stringify(obj)).length + 9;
  obj.pad = ' '.repeat((block - (unpadded % block)) % block);
  return encoder.encode(JSON.stringify(obj));
}

function optionalString(obj: Record<string, unknown>, key: string, max: number): string | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length > max)
    throw new CodecError(`content field ${key} is not a short string`);
  return v;
}

/**
 * Parses application data; throws CodecError unless it is UTF-8 JSON with a string `content` (ids up to 128
 * characters, type up to 64). Unknown fields are ignored.
 */
export function decodeContent(bytes: Uint8Array): AppContent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(bytes));
  } catch (cause) {
    throw new CodecError('application data is not UTF-8 JSON', { cause });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CodecError('application data is not a JSON object');
  }
  const obj = parsed as Record<string, unknown>;
  if (typeof obj.content !== 'string') throw new CodecError('application data has no string "content"');
  const out: AppContent = { content: obj.content, type: optionalString(obj, 'type', 64) ?? 'text' };
  const id = optionalString(obj, 'id', MAX_ID_LENGTH);
  const replyTo = optionalString(obj, 'reply_to', MAX_ID_LENGTH);
  if (id !== undefined) out.id = id;
  if (replyTo !== undefined) out.replyTo = replyTo;
  return out;
}

/** MLS accepted it but the application cannot read it: undefined, the caller counts `content`. */
export function tryDecodeContent(plaintext: Uint8Array | undefined): AppContent | undefined {
  if (!plaintext) return undefined;
  try {
    return decodeContent(plaintext);
  } catch {
    return undefined;
  }
}
