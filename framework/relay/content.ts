/**
 * MLS application data (PROTOCOL.md §8): a UTF-8 JSON object with a `type` (default "text"), optional
 * `id` and `reply_to`, and the type's own fields (content-fields.ts). Unknown fields are ignored and
 * an unknown type still reads as its text; anything else is not content.
 */
import { contentFromWire, contentToWire, type WireObject } from './content-fields.js';
import type { AppContent } from './content-types.js';
import { ArgumentError, CodecError } from './errors.js';

export * from './content-types.js';

const decoder = new TextDecoder('utf-8', { fatal: true });

/** How encodeContent() frames the JSON: group messages are padded. */
export interface ContentEncodeOptions {
  /**
   * Group messages (PROTOCOL.md §8, §9) carry `"pad"`: spaces making the UTF-8 length a multiple of
   * this many bytes, since ts-mls's own padding cannot express a block size.
   */
  padTo?: number;
}

/**
 * What encodeContent() takes: typed content, or the loose `{ content, type? }` of a plain message
 * (type "text" when absent). A known type's fields are checked at run time either way.
 */
export type ContentInput = AppContent | { content: string; id?: string; replyTo?: string; type?: string };

/**
 * UTF-8 JSON of the content, `reply_to` in wire spelling and a "text" type omitted; `padTo` pads with
 * spaces to a multiple of that many bytes (used for groups). Throws ArgumentError, naming the field,
 * when the content breaks a §8 bound: the encoder never produces what decodeContent would reject.
 */
export function encodeContent(c: ContentInput, options: ContentEncodeOptions = {}): Uint8Array {
  const obj = contentToWire({ ...c, type: c.type ?? 'text' } as AppContent);
  try {
    contentFromWire(obj);
  } catch (e) {
    if (e instanceof CodecError) throw new ArgumentError(`cannot send this content: ${e.message}`);
    throw e;
  }
  const encoder = new TextEncoder();
  const block = options.padTo;
  if (block === undefined) return encoder.encode(JSON.stringify(obj));
  // `,"pad":""` adds 9 bytes before the spaces; spaces need no JSON escaping, one byte each.
  const unpadded = encoder.encode(JSON.stringify(obj)).length + 9;
  obj.pad = ' '.repeat((block - (unpadded % block)) % block);
  return encoder.encode(JSON.stringify(obj));
}

/**
 * Parses application data; throws CodecError unless it is a UTF-8 JSON object that reads as content:
 * a string `content` for text and unknown types (type ≤ 64 characters, ids ≤ 128), and every field
 * and bound §8 gives a known type. Unknown fields are ignored.
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
  return contentFromWire(parsed as WireObject);
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
