/** Byte helpers shared by the codecs and the crypto modules. Pure functions, no dependencies. */
import { ArgumentError } from './errors.js';

const HEX_RE = /^(?:[0-9a-f]{2})*$/;

/** Lowercase hex of the bytes, two characters per byte (the form fromHex accepts back). */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Strict: lowercase only, even length. Input is user- or config-supplied, so errors name the problem. */
export function fromHex(hex: string): Uint8Array {
  if (!HEX_RE.test(hex)) throw new ArgumentError('expected an even number of lowercase hex characters');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Stateless, so one serves every call (a new one per call showed in profiles, issue #12). */
const encoder = new TextEncoder();

export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

export function u64be(x: number | bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(x), false);
  return out;
}

export function u64le(x: number | bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(x), true);
  return out;
}

/** Constant-time comparison for MACs and tags. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Overwrite secret material once it is no longer needed. */
export function wipe(bytes: Uint8Array | undefined): void {
  bytes?.fill(0);
}
