/**
 * Deterministic CBOR maps with small unsigned-integer keys (PROTOCOL.md §1, RFC 8949 §4.2.1).
 *
 * Each wire message declares its fields once with `defineSchema`; `encodeMap` and `decodeMap` both
 * read that declaration. Encoding goes through cborg with RFC 8949 bytewise key order. Decoding walks
 * cborg's tokeniser in strict mode (shortest integer and length forms, no indefinite lengths) and adds
 * what cborg does not check: key order and uniqueness, integer-only keys, field types and sizes,
 * trailing bytes, nesting depth, entry count and a total size cap. Unknown integer keys are skipped.
 *
 * Every failure on input bytes is a CodecError; a caller passing a value that does not fit the schema
 * to `encodeMap` gets an ArgumentError (that is a programming error, not hostile input).
 */
import { encode, rfc8949EncodeOptions, Tokenizer, Type, type Token } from 'cborg';
import { ArgumentError, CodecError } from './errors.js';
import { concatBytes } from './bytes.js';

export type FieldType = 'uint' | 'uint64' | 'bytes' | 'text';

interface FieldBase {
  /** The CBOR map key. */
  readonly key: number;
  readonly required: boolean;
}

/** An unsigned integer that fits a JS safe integer, decoded as `number`. */
export interface UintField extends FieldBase {
  readonly type: 'uint';
  readonly min?: number;
  readonly max?: number;
}

/** An unsigned integer of up to 64 bits, decoded as `bigint`. */
export interface Uint64Field extends FieldBase {
  readonly type: 'uint64';
}

export interface BytesField extends FieldBase {
  readonly type: 'bytes';
  /** Exact length; when set, minLength and maxLength are ignored. */
  readonly length?: number;
  readonly minLength?: number;
  /** Required unless `length` is set, so no byte field is unbounded. */
  readonly maxLength?: number;
}

/** A UTF-8 text string; invalid UTF-8 is rejected, not replaced. */
export interface TextField extends FieldBase {
  readonly type: 'text';
  readonly maxBytes: number;
}

export type FieldSpec = UintField | Uint64Field | BytesField | TextField;
export type Fields = Readonly<Record<string, FieldSpec>>;

type FieldValue<F extends FieldSpec> = F extends UintField
  ? number
  : F extends Uint64Field
    ? bigint
    : F extends BytesField
      ? Uint8Array
      : string;

type RequiredNames<F extends Fields> = { [K in keyof F]: F[K]['required'] extends true ? K : never }[keyof F];
type OptionalNames<F extends Fields> = Exclude<keyof F, RequiredNames<F>>;

/** The plain object a schema encodes from and decodes to. */
export type SchemaValue<F extends Fields> = { [K in RequiredNames<F>]: FieldValue<F[K]> } & {
  [K in OptionalNames<F>]?: FieldValue<F[K]>;
};

export interface Schema<F extends Fields> {
  /** Names the message in error messages. */
  readonly name: string;
  readonly fields: F;
  /** Inputs longer than this are rejected before any parsing. */
  readonly maxBytes: number;
  /** Field name by key, for the decoder. */
  readonly byKey: ReadonlyMap<number, string>;
}

/** No message of ours has more than a dozen fields; this bounds work on a map header that lies. */
export const MAX_MAP_ENTRIES = 64;
/** Depth of nested arrays/maps inside an unknown field's value (the top-level map is depth 1). */
export const MAX_NESTING_DEPTH = 8;

const MAX_KEY = 0xffff_ffff;
/** In a `u` regex a surrogate pair is one code point, so this matches only unpaired halves. */
const LONE_SURROGATE = /\p{Cs}/u;

export function defineSchema<const F extends Fields>(name: string, maxBytes: number, fields: F): Schema<F> {
  const byKey = new Map<number, string>();
  for (const [fieldName, spec] of Object.entries(fields)) {
    if (!Number.isInteger(spec.key) || spec.key < 0 || spec.key > MAX_KEY) {
      throw new ArgumentError(`${name}.${fieldName}: key must be a small unsigned integer`);
    }
    if (byKey.has(spec.key)) throw new ArgumentError(`${name}: key ${spec.key} declared twice`);
    if (spec.type === 'bytes' && spec.length === undefined && spec.maxLength === undefined) {
      throw new ArgumentError(`${name}.${fieldName}: a byte field needs a length or a maxLength`);
    }
    byKey.set(spec.key, fieldName);
  }
  if (byKey.size > MAX_MAP_ENTRIES) throw new ArgumentError(`${name}: too many fields`);
  return { name, fields, maxBytes, byKey };
}

// ---------------------------------------------------------------------------------------------------
// Encoding

/**
 * Encode `value` as the deterministic CBOR map of `schema`. Absent optional fields are omitted.
 * Throws ArgumentError when a value breaks the schema (the encoder never produces what the decoder
 * would reject).
 */
export function encodeMap<F extends Fields>(schema: Schema<F>, value: SchemaValue<F>): Uint8Array {
  const entries = new Map<number, number | bigint | Uint8Array | string>();
  const record = value as Record<string, unknown>;
  for (const [name, spec] of Object.entries(schema.fields)) {
    const v = record[name];
    if (v === undefined) {
      if (spec.required) throw new ArgumentError(`${schema.name}.${name} is required`);
      continue;
    }
    entries.set(spec.key, checkedForEncode(schema.name, name, spec, v));
  }
  // RFC 8949 §4.2.1: keys sorted bytewise on their encodings; for unsigned integers in shortest
  // form that is numeric order, which rfc8949EncodeOptions applies.
  const out = encode(entries, rfc8949EncodeOptions);
  if (out.length > schema.maxBytes) {
    throw new ArgumentError(
      `${schema.name} encodes to ${out.length} bytes, over its ${schema.maxBytes} limit`,
    );
  }
  return out;
}

function checkedForEncode(
  msg: string,
  name: string,
  spec: FieldSpec,
  v: unknown,
): number | bigint | Uint8Array | string {
  const where = `${msg}.${name}`;
  switch (spec.type) {
    case 'uint':
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
        throw new ArgumentError(`${where} must be a non-negative safe integer`);
      }
      if ((spec.min !== undefined && v < spec.min) || (spec.max !== undefined && v > spec.max)) {
        throw new ArgumentError(`${where} out of range`);
      }
      return v;
    case 'uint64':
      if (typeof v !== 'bigint' || v < 0n || v > 0xffff_ffff_ffff_ffffn) {
        throw new ArgumentError(`${where} must be a bigint in 0..2^64-1`);
      }
      return v;
    case 'bytes':
      if (!(v instanceof Uint8Array)) throw new ArgumentError(`${where} must be a Uint8Array`);
      if (!bytesLengthOk(spec, v.length)) throw new ArgumentError(`${where} has a bad length ${v.length}`);
      return v;
    case 'text': {
      if (typeof v !== 'string') throw new ArgumentError(`${where} must be a string`);
      if (LONE_SURROGATE.test(v)) throw new ArgumentError(`${where} is not well-formed Unicode`);
      const n = Buffer.byteLength(v, 'utf8');
      if (n > spec.maxBytes) throw new ArgumentError(`${where} is ${n} UTF-8 bytes, over ${spec.maxBytes}`);
      return v;
    }
  }
}

function bytesLengthOk(spec: BytesField, n: number): boolean {
  if (spec.length !== undefined) return n === spec.length;
  if (spec.minLength !== undefined && n < spec.minLength) return false;
  if (spec.maxLength !== undefined && n > spec.maxLength) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------------
// Decoding

/** Where each map entry sits in the decoded bytes; lets a verifier drop one entry without re-encoding. */
export interface MapLayout {
  /** Length of the map header (major type 5 plus count). */
  readonly headerLength: number;
  /** Every entry in wire order, unknown keys included; `end` is exclusive. */
  readonly entries: readonly { readonly key: number; readonly start: number; readonly end: number }[];
}

const DECODE_OPTIONS = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  allowBigInt: true,
  retainStringBytes: true,
} as const;

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function decodeMap<F extends Fields>(schema: Schema<F>, bytes: Uint8Array): SchemaValue<F> {
  return decodeMapWithLayout(schema, bytes).value;
}

/**
 * Decode and check `bytes` against `schema`. Throws only CodecError. Work is linear in the input:
 * each token consumes at least one byte and is looked at once.
 */
export function decodeMapWithLayout<F extends Fields>(
  schema: Schema<F>,
  bytes: Uint8Array,
): { value: SchemaValue<F>; layout: MapLayout } {
  if (!(bytes instanceof Uint8Array)) throw new CodecError(`${schema.name}: input is not bytes`);
  if (bytes.length > schema.maxBytes) {
    throw new CodecError(`${schema.name}: ${bytes.length} bytes is over the ${schema.maxBytes} limit`);
  }
  try {
    return decodeChecked(schema, bytes);
  } catch (err) {
    if (err instanceof CodecError) throw err;
    // cborg signals malformed input with plain Errors; anything else escaping here is also treated as
    // bad input, so a hostile message can never surface an untyped exception.
    const reason = err instanceof Error ? err.message : String(err);
    throw new CodecError(`${schema.name}: malformed CBOR (${reason})`, { cause: err });
  }
}

function decodeChecked<F extends Fields>(
  schema: Schema<F>,
  bytes: Uint8Array,
): { value: SchemaValue<F>; layout: MapLayout } {
  const tok = new Tokenizer(bytes, DECODE_OPTIONS);
  const head = nextToken(tok, schema.name);
  if (!Type.equals(head.type, Type.map)) throw new CodecError(`${schema.name}: not a CBOR map`);
  const count = head.value as number;
  if (count > MAX_MAP_ENTRIES) throw new CodecError(`${schema.name}: map has too many entries`);

  const out: Record<string, number | bigint | Uint8Array | string> = {};
  const entries: { key: number; start: number; end: number }[] = [];
  const headerLength = tok.pos();
  let previousKey = -1;
  for (let i = 0; i < count; i++) {
    const start = tok.pos();
    const keyToken = nextToken(tok, schema.name);
    if (!Type.equals(keyToken.type, Type.uint)) {
      throw new CodecError(`${schema.name}: map keys must be unsigned integers`);
    }
    const key = keyToken.value as number | bigint;
    if (typeof key !== 'number' || key > MAX_KEY) throw new CodecError(`${schema.name}: map key too large`);
    // RFC 8949 §4.2.1 bytewise order of shortest-form unsigned keys is numeric order.
    if (key === previousKey) throw new CodecError(`${schema.name}: duplicate map key ${key}`);
    if (key < previousKey) throw new CodecError(`${schema.name}: map keys not in deterministic order`);
    previousKey = key;

    const name = schema.byKey.get(key);
    if (name === undefined) {
      skipItem(tok, schema.name, 2);
    } else {
      const spec = schema.fields[name]!;
      out[name] = readField(tok, schema.name, name, spec);
    }
    entries.push({ key, start, end: tok.pos() });
  }
  if (!tok.done()) throw new CodecError(`${schema.name}: trailing bytes after the map`);

  for (const [name, spec] of Object.entries(schema.fields)) {
    if (spec.required && out[name] === undefined) {
      throw new CodecError(`${schema.name}: required field ${name} (key ${spec.key}) missing`);
    }
  }
  return { value: out as SchemaValue<F>, layout: { headerLength, entries } };
}

function nextToken(tok: Tokenizer, msg: string): Token {
  if (tok.done()) throw new CodecError(`${msg}: truncated input`);
  return tok.next();
}

function readField(
  tok: Tokenizer,
  msg: string,
  name: string,
  spec: FieldSpec,
): number | bigint | Uint8Array | string {
  const where = `${msg}.${name}`;
  const t = nextToken(tok, msg);
  switch (spec.type) {
    case 'uint': {
      if (!Type.equals(t.type, Type.uint)) throw new CodecError(`${where}: expected an unsigned integer`);
      const v = t.value as number | bigint;
      if (typeof v !== 'number') throw new CodecError(`${where}: integer too large`);
      if ((spec.min !== undefined && v < spec.min) || (spec.max !== undefined && v > spec.max)) {
        throw new CodecError(`${where}: value ${v} out of range`);
      }
      return v;
    }
    case 'uint64': {
      if (!Type.equals(t.type, Type.uint)) throw new CodecError(`${where}: expected an unsigned integer`);
      return BigInt(t.value as number | bigint);
    }
    case 'bytes': {
      if (!Type.equals(t.type, Type.bytes)) throw new CodecError(`${where}: expected a byte string`);
      const v = t.value as Uint8Array;
      if (!bytesLengthOk(spec, v.length)) throw new CodecError(`${where}: bad length ${v.length}`);
      // cborg's shared token for the empty byte string must not leak out as a mutable singleton.
      if (v.length === 0) return new Uint8Array(0);
      // A Buffer input (MQTT payloads are Buffers) gives Buffer views; decoded values are plain
      // Uint8Arrays whatever the input was (a view, no copy), so equal bytes compare and print alike.
      return Buffer.isBuffer(v) ? new Uint8Array(v.buffer, v.byteOffset, v.length) : v;
    }
    case 'text': {
      if (!Type.equals(t.type, Type.string)) throw new CodecError(`${where}: expected a text string`);
      const raw = t.byteValue ?? new Uint8Array(0);
      if (raw.length > spec.maxBytes) throw new CodecError(`${where}: longer than ${spec.maxBytes} bytes`);
      try {
        return fatalUtf8.decode(raw);
      } catch (err) {
        throw new CodecError(`${where}: invalid UTF-8`, { cause: err });
      }
    }
  }
}

/**
 * Skip the value of an unknown key. Only a deterministic-friendly subset is allowed: integers, byte and
 * text strings, arrays, integer-keyed maps in ascending key order, booleans and null. Floats, tags and
 * undefined are rejected, because their canonical forms are not checked here.
 */
function skipItem(tok: Tokenizer, msg: string, depth: number): void {
  if (depth > MAX_NESTING_DEPTH) throw new CodecError(`${msg}: nested too deeply`);
  const t = nextToken(tok, msg);
  // Dispatch on the major type number: this loop runs once per token of hostile input.
  switch (t.type.major) {
    case 0: // unsigned integer
    case 1: // negative integer
    case 2: // byte string
      return;
    case 3: // text string
      if (t.byteValue !== undefined && t.byteValue.length > 0) checkUtf8(t.byteValue, msg);
      return;
    case 4: {
      const n = t.value as number;
      for (let i = 0; i < n; i++) skipItem(tok, msg, depth + 1);
      return;
    }
    case 5: {
      const n = t.value as number;
      let previous: number | bigint = -1;
      for (let i = 0; i < n; i++) {
        const k = nextToken(tok, msg);
        if (k.type.major !== 0) throw new CodecError(`${msg}: nested map keys must be unsigned integers`);
        // Keys beyond 2^53 arrive as bigint; JS compares bigint and number exactly.
        const key = k.value as number | bigint;
        if (key <= previous) throw new CodecError(`${msg}: nested map keys duplicate or unsorted`);
        previous = key;
        skipItem(tok, msg, depth + 1);
      }
      return;
    }
    case 7:
      if (Type.equals(t.type, Type.true) || Type.equals(t.type, Type.false) || Type.equals(t.type, Type.null))
        return;
      break;
  }
  throw new CodecError(`${msg}: unsupported CBOR item (${t.type.name}) in an unknown field`);
}

function checkUtf8(bytes: Uint8Array, msg: string): void {
  try {
    fatalUtf8.decode(bytes);
  } catch (err) {
    throw new CodecError(`${msg}: invalid UTF-8 in an unknown field`, { cause: err });
  }
}

/**
 * The deterministic encoding of the map in `bytes` (already decoded with `layout`) without `key`:
 * the header re-encoded with one entry fewer, then every other entry byte for byte. Unknown keys stay
 * covered, which keeps signatures over "the map without key N" valid across protocol extensions.
 */
export function mapBytesWithout(bytes: Uint8Array, layout: MapLayout, key: number): Uint8Array {
  const kept = layout.entries.filter((e) => e.key !== key);
  const parts = [encodeMapHeader(kept.length)];
  for (const e of kept) parts.push(bytes.subarray(e.start, e.end));
  return concatBytes(...parts);
}

/** RFC 8949 §3.1 / §4.2.1: major type 5 with the count in shortest form. */
function encodeMapHeader(count: number): Uint8Array {
  if (count < 24) return Uint8Array.of(0xa0 | count);
  if (count < 0x100) return Uint8Array.of(0xb8, count);
  if (count < 0x10000) return Uint8Array.of(0xb9, count >> 8, count & 0xff);
  throw new ArgumentError('map too large');
}

/** Encoded size of a byte string header for `n` bytes (RFC 8949 §3.1, shortest form). */
export function bytesHeaderLength(n: number): number {
  if (n < 24) return 1;
  if (n < 0x100) return 2;
  if (n < 0x10000) return 3;
  if (n < 0x1_0000_0000) return 5;
  return 9;
}
