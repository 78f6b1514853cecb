/**
 * The fields of each §8 content type, both ways: a parsed JSON object → AppContent (every bound
 * checked, CodecError on the first that fails) and AppContent → the JSON object to serialise. Pure;
 * content.ts adds the UTF-8/JSON framing and the group padding.
 */
import { createHash } from 'node:crypto';
import { CodecError } from './errors.js';
import {
  ATTACHMENT_KEY_LENGTH,
  ATTACHMENT_NONCE_LENGTH,
  isKnownContentType,
  MAX_ACTIONS,
  MAX_CONTENT_ID_LENGTH,
  MAX_CONTENT_TYPE_LENGTH,
  MAX_INLINE_ATTACHMENT_BYTES,
  MAX_REACTION_BYTES,
  TASK_STATES,
  TYPING_STATES,
  type AppContent,
  type AttachmentContent,
  type AttachmentSource,
  type ContentAction,
  type KnownContent,
  type KnownContentType,
} from './content-types.js';

/** A JSON object as JSON.parse returns it. */
export type WireObject = Record<string, unknown>;

const SHA256_HEX = /^[0-9a-f]{64}$/;
const encoder = new TextEncoder();

function fail(type: string, message: string): never {
  throw new CodecError(`${type} content: ${message}`);
}

// ---------------------------------------------------------------- field readers

function str(o: WireObject, type: string, key: string): string {
  const v = o[key];
  if (typeof v !== 'string') fail(type, `"${key}" must be a string`);
  return v;
}

function optStr(o: WireObject, type: string, key: string): string | undefined {
  return o[key] === undefined ? undefined : str(o, type, key);
}

function id(o: WireObject, type: string, key: string): string {
  const v = str(o, type, key);
  if (v.length === 0 || v.length > MAX_CONTENT_ID_LENGTH)
    fail(type, `"${key}" must be 1..${MAX_CONTENT_ID_LENGTH} characters`);
  return v;
}

/** An optional id may be empty, as it always could be: only its length is bounded. */
function optId(o: WireObject, type: string, key: string): string | undefined {
  const v = optStr(o, type, key);
  if (v !== undefined && v.length > MAX_CONTENT_ID_LENGTH)
    fail(type, `"${key}" must be at most ${MAX_CONTENT_ID_LENGTH} characters`);
  return v;
}

function optBool(o: WireObject, type: string, key: string): boolean | undefined {
  const v = o[key];
  if (v !== undefined && typeof v !== 'boolean') fail(type, `"${key}" must be true or false`);
  return v;
}

function oneOf<T extends string>(o: WireObject, type: string, key: string, allowed: readonly T[]): T {
  const v = str(o, type, key);
  if (!(allowed as readonly string[]).includes(v))
    fail(type, `"${key}" must be one of ${allowed.join(', ')}`);
  return v as T;
}

function count(o: WireObject, type: string, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    fail(type, `"${key}" must be a non-negative integer`);
  return v;
}

/** Standard base64 with padding (RFC 4648 §4), canonical only: one encoding per byte string. */
function base64(o: WireObject, type: string, key: string, maxBytes: number): Uint8Array {
  const text = str(o, type, key);
  // 4 characters carry 3 bytes; refuse before decoding anything larger than the bound allows.
  if (text.length > Math.ceil(maxBytes / 3) * 4) fail(type, `"${key}" is over ${maxBytes} bytes`);
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) fail(type, `"${key}" is not canonical base64`);
  if (bytes.length > maxBytes) fail(type, `"${key}" is over ${maxBytes} bytes`);
  return new Uint8Array(bytes);
}

function fixedBase64(o: WireObject, type: string, key: string, length: number): Uint8Array {
  const bytes = base64(o, type, key, length);
  if (bytes.length !== length) fail(type, `"${key}" must be ${length} bytes`);
  return bytes;
}

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** `id` and `reply_to` as optional ids, for the types that do not require them. */
function refs(o: WireObject, type: string): { id?: string; replyTo?: string } {
  const out: { id?: string; replyTo?: string } = {};
  const i = optId(o, type, 'id');
  const r = optId(o, type, 'reply_to');
  if (i !== undefined) out.id = i;
  if (r !== undefined) out.replyTo = r;
  return out;
}

// ---------------------------------------------------------------- per type

function actions(o: WireObject): ContentAction[] {
  const list = o.actions;
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_ACTIONS)
    fail('actions', `"actions" must list 1..${MAX_ACTIONS} buttons`);
  const seen = new Set<string>();
  return list.map((a: unknown) => {
    if (typeof a !== 'object' || a === null || Array.isArray(a)) fail('actions', 'a button is not an object');
    const button = {
      id: id(a as WireObject, 'actions', 'id'),
      label: str(a as WireObject, 'actions', 'label'),
    };
    if (seen.has(button.id)) fail('actions', `two buttons have the id ${JSON.stringify(button.id)}`);
    seen.add(button.id);
    return button;
  });
}

function attachmentSource(o: WireObject): AttachmentSource {
  const inline = o.data !== undefined;
  const remote = o.url !== undefined || o.key !== undefined || o.nonce !== undefined;
  if (inline === remote) fail('attachment', 'give either "data" or "url" with "key" and "nonce"');
  if (inline) return { kind: 'inline', data: base64(o, 'attachment', 'data', MAX_INLINE_ATTACHMENT_BYTES) };
  const url = str(o, 'attachment', 'url');
  if (!URL.canParse(url)) fail('attachment', '"url" is not a URL');
  return {
    kind: 'url',
    url,
    key: fixedBase64(o, 'attachment', 'key', ATTACHMENT_KEY_LENGTH),
    nonce: fixedBase64(o, 'attachment', 'nonce', ATTACHMENT_NONCE_LENGTH),
  };
}

function attachment(o: WireObject): AttachmentContent {
  const name = str(o, 'attachment', 'name');
  if (name.length === 0) fail('attachment', '"name" is empty');
  const sha256 = str(o, 'attachment', 'sha256');
  if (!SHA256_HEX.test(sha256)) fail('attachment', '"sha256" must be 64 lowercase hex characters');
  const out: AttachmentContent = {
    type: 'attachment',
    name,
    mime: str(o, 'attachment', 'mime'),
    size: count(o, 'attachment', 'size'),
    sha256,
    source: attachmentSource(o),
    content: optStr(o, 'attachment', 'content') ?? '',
    ...refs(o, 'attachment'),
  };
  // Inline bytes are in hand: a size or digest that does not match them makes the message unreadable.
  if (out.source.kind === 'inline') {
    const data = out.source.data;
    if (data.length !== out.size) fail('attachment', '"size" is not the length of "data"');
    if (createHash('sha256').update(data).digest('hex') !== sha256)
      fail('attachment', '"sha256" is not the digest of "data"');
  }
  return out;
}

function known(o: WireObject, type: KnownContentType): KnownContent {
  switch (type) {
    case 'text':
      return { type, content: str(o, type, 'content'), ...refs(o, type) };
    case 'reaction': {
      const content = str(o, type, 'content');
      const bytes = encoder.encode(content).length;
      if (bytes === 0 || bytes > MAX_REACTION_BYTES)
        fail(type, `"content" must be 1..${MAX_REACTION_BYTES} UTF-8 bytes`);
      const remove = optBool(o, type, 'remove');
      return {
        ...refs(o, type),
        type,
        content,
        replyTo: id(o, type, 'reply_to'),
        ...(remove !== undefined ? { remove } : {}),
      };
    }
    case 'edit':
    case 'action':
      return { ...refs(o, type), type, content: str(o, type, 'content'), replyTo: id(o, type, 'reply_to') };
    case 'delete':
    case 'task-cancel':
      return {
        ...refs(o, type),
        type,
        content: optStr(o, type, 'content') ?? '',
        replyTo: id(o, type, 'reply_to'),
      };
    case 'typing':
      return {
        ...refs(o, type),
        type,
        state: oneOf(o, type, 'state', TYPING_STATES),
        content: optStr(o, type, 'content') ?? '',
      };
    case 'stream': {
      const done = optBool(o, type, 'done');
      return {
        ...refs(o, type),
        type,
        id: id(o, type, 'id'),
        seq: count(o, type, 'seq'),
        content: str(o, type, 'content'),
        ...(done !== undefined ? { done } : {}),
      };
    }
    case 'task': {
      const progress = o.progress;
      if (progress !== undefined && (typeof progress !== 'number' || !(progress >= 0 && progress <= 1)))
        fail(type, '"progress" must be a number from 0 to 1');
      return {
        type,
        id: id(o, type, 'id'),
        replyTo: id(o, type, 'reply_to'),
        state: oneOf(o, type, 'state', TASK_STATES),
        content: str(o, type, 'content'),
        ...(progress !== undefined ? { progress } : {}),
      };
    }
    case 'actions':
      return { ...refs(o, type), type, content: str(o, type, 'content'), actions: actions(o) };
    case 'attachment':
      return attachment(o);
  }
}

/**
 * A parsed JSON object → content. Unknown fields are ignored; an unknown `type` needs only a string
 * `content`; a known type with a missing or out-of-bound field is a CodecError.
 */
export function contentFromWire(o: WireObject): AppContent {
  const type = o.type === undefined ? 'text' : o.type;
  if (typeof type !== 'string' || type.length > MAX_CONTENT_TYPE_LENGTH)
    throw new CodecError(`content "type" must be a string of at most ${MAX_CONTENT_TYPE_LENGTH} characters`);
  if (isKnownContentType(type)) return known(o, type);
  return { type, content: str(o, type, 'content'), ...refs(o, type) };
}

/** Types whose `content` may be absent on the wire: an empty one is left out. */
const CONTENT_OPTIONAL = new Set<string>(['delete', 'typing', 'task-cancel', 'attachment']);

/** The fields each type carries as they are (besides content, id, reply_to and type). */
const PLAIN_FIELDS: Readonly<Record<string, readonly string[]>> = {
  reaction: ['remove'],
  typing: ['state'],
  stream: ['seq', 'done'],
  task: ['state', 'progress'],
  attachment: ['name', 'mime', 'size', 'sha256'],
};

/**
 * Content → the JSON object to serialise: wire spelling (`reply_to`), `type` omitted for text, base64
 * for bytes. It does not validate; content.ts checks the result with contentFromWire.
 */
export function contentToWire(c: AppContent): WireObject {
  const o: WireObject = {};
  if (!(CONTENT_OPTIONAL.has(c.type) && c.content === '')) o.content = c.content;
  if (c.id !== undefined) o.id = c.id;
  if (c.replyTo !== undefined) o.reply_to = c.replyTo;
  if (c.type !== 'text') o.type = c.type;
  const extra = c as unknown as WireObject;
  for (const key of PLAIN_FIELDS[c.type] ?? []) {
    if (extra[key] !== undefined) o[key] = extra[key];
  }
  if (c.type === 'actions' && 'actions' in c) {
    o.actions = c.actions.map((a) => ({ id: a.id, label: a.label }));
  }
  if (c.type === 'attachment' && 'source' in c) {
    const s = c.source;
    if (s.kind === 'inline') o.data = toBase64(s.data);
    else Object.assign(o, { url: s.url, key: toBase64(s.key), nonce: toBase64(s.nonce) });
  }
  return o;
}
