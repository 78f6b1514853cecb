/**
 * Input mutation for the fuzzer (test/fuzz/run.ts): a seeded PRNG and byte-level mutations in the
 * style of libFuzzer's (flip, set, insert, erase, copy, splice, dictionary tokens, length-field
 * tweaks), so a run is reproducible from its seed. Pure: no I/O.
 */

/** mulberry32: fast, seedable 32-bit generator, good enough to pick mutations. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** 32 random bits. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, n). */
  below(n: number): number {
    return n <= 1 ? 0 : this.next() % n;
  }

  chance(oneIn: number): boolean {
    return this.below(oneIn) === 0;
  }
}

/** Bytes that often sit on a boundary of some length or type check. */
const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x3f, 0x40, 0xc0];

export type Mutation = (input: Uint8Array, rng: Rng, others: readonly Uint8Array[]) => Uint8Array;

function flipBit(b: Uint8Array, rng: Rng): Uint8Array {
  if (b.length === 0) return b;
  const out = b.slice();
  const i = rng.below(out.length);
  out[i] = out[i]! ^ (1 << rng.below(8));
  return out;
}

function setByte(b: Uint8Array, rng: Rng): Uint8Array {
  if (b.length === 0) return Uint8Array.of(INTERESTING[rng.below(INTERESTING.length)]!);
  const out = b.slice();
  out[rng.below(out.length)] = rng.chance(2) ? INTERESTING[rng.below(INTERESTING.length)]! : rng.below(256);
  return out;
}

function insert(b: Uint8Array, at: number, piece: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length + piece.length);
  out.set(b.subarray(0, at));
  out.set(piece, at);
  out.set(b.subarray(at), at + piece.length);
  return out;
}

function insertRandom(b: Uint8Array, rng: Rng): Uint8Array {
  const n = 1 + rng.below(rng.chance(8) ? 256 : 8);
  const piece = new Uint8Array(n);
  const fill = rng.chance(2) ? rng.below(256) : -1;
  for (let i = 0; i < n; i++) piece[i] = fill >= 0 ? fill : rng.below(256);
  return insert(b, rng.below(b.length + 1), piece);
}

function erase(b: Uint8Array, rng: Rng): Uint8Array {
  if (b.length < 2) return b;
  const at = rng.below(b.length);
  const n = 1 + rng.below(Math.min(b.length - at, rng.chance(4) ? b.length : 16));
  const out = new Uint8Array(b.length - n);
  out.set(b.subarray(0, at));
  out.set(b.subarray(at + n), at);
  return out;
}

function truncate(b: Uint8Array, rng: Rng): Uint8Array {
  return b.subarray(0, rng.below(b.length + 1)).slice();
}

function duplicateRange(b: Uint8Array, rng: Rng): Uint8Array {
  if (b.length === 0) return b;
  const at = rng.below(b.length);
  const n = 1 + rng.below(Math.min(b.length - at, 64));
  return insert(b, rng.below(b.length + 1), b.slice(at, at + n));
}

/** Overwrite a byte with a neighbour value (±1..16): lengths and counts off by a little. */
function arith(b: Uint8Array, rng: Rng): Uint8Array {
  if (b.length === 0) return b;
  const out = b.slice();
  const i = rng.below(out.length);
  const delta = 1 + rng.below(16);
  out[i] = (out[i]! + (rng.chance(2) ? delta : 256 - delta)) & 0xff;
  return out;
}

/** Splice: the head of this input with the tail of another (libFuzzer's CrossOver). */
function splice(b: Uint8Array, rng: Rng, others: readonly Uint8Array[]): Uint8Array {
  if (others.length === 0) return b;
  const other = others[rng.below(others.length)]!;
  const head = b.subarray(0, rng.below(b.length + 1));
  const tail = other.subarray(rng.below(other.length + 1));
  const out = new Uint8Array(head.length + tail.length);
  out.set(head);
  out.set(tail, head.length);
  return out;
}

export function dictionaryMutation(dictionary: readonly Uint8Array[]): Mutation {
  return (b, rng) => {
    if (dictionary.length === 0) return b;
    const token = dictionary[rng.below(dictionary.length)]!;
    if (rng.chance(2) || b.length < token.length) return insert(b, rng.below(b.length + 1), token);
    const out = b.slice();
    out.set(token, rng.below(b.length - token.length + 1));
    return out;
  };
}

const BASE: Mutation[] = [flipBit, setByte, insertRandom, erase, truncate, duplicateRange, arith, splice];

/** 1 to 4 stacked mutations, as libFuzzer does; capped at `maxLength`. */
export function mutate(
  input: Uint8Array,
  rng: Rng,
  others: readonly Uint8Array[],
  dictionary: readonly Uint8Array[],
  maxLength: number,
): Uint8Array {
  const mutations = dictionary.length > 0 ? [...BASE, dictionaryMutation(dictionary)] : BASE;
  let out = input;
  const depth = 1 + rng.below(4);
  for (let i = 0; i < depth; i++) out = mutations[rng.below(mutations.length)]!(out, rng, others);
  return out.length > maxLength ? out.subarray(0, maxLength) : out;
}
