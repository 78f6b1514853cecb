/**
 * Decoding cost must grow linearly with input size (PROTOCOL.md §10: no input may block other
 * conversations). Compares the per-byte cost at 4 KiB and 256 KiB for inputs that are cheap per byte
 * (one large byte string) and expensive per byte (one token per byte, nested containers, an error at
 * the very end), as a ratio of the two, each the best of several alternating rounds of many decodes.
 * Nothing here compares against an absolute time.
 */
import { decodeMap, defineSchema } from '../../framework/relay/codec.js';
import { concatBytes } from '../../framework/relay/bytes.js';
import { CodecError } from '../../framework/relay/errors.js';

const schema = defineSchema('Growth', 1 << 20, {
  n: { key: 0, type: 'uint', required: true },
  blob: { key: 2, type: 'bytes', required: false, maxLength: 1 << 20 },
  name: { key: 3, type: 'text', required: false, maxBytes: 1 << 20 },
});

const SMALL = 4 * 1024;
const LARGE = 256 * 1024;
/**
 * A quadratic step makes the 64x larger input ~64x dearer per byte; a linear one stays near 1. The
 * bound sits well between the two: a loaded CI machine once measured 12 for the large text string
 * (a large string lands in V8's old space), which an 8x bound failed although nothing grew.
 */
const MAX_RATIO = 24;
const ROUNDS = 7;
const BYTES_PER_ROUND = 2 * 1024 * 1024;

/** RFC 8949 §3.1 head with a 4-byte argument, valid shortest form for 65536..2^32-1 only. */
function head32(major: number, n: number): Uint8Array {
  if (n < 0x10000) throw new Error('use head16');
  return Uint8Array.of((major << 5) | 26, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

function headAny(major: number, n: number): Uint8Array {
  if (n < 24) return Uint8Array.of((major << 5) | n);
  if (n < 0x100) return Uint8Array.of((major << 5) | 24, n);
  if (n < 0x10000) return Uint8Array.of((major << 5) | 25, n >> 8, n & 0xff);
  return head32(major, n);
}

/** {0: 1, 2: h'00…'} of about `size` bytes. */
function bigBytes(size: number): Uint8Array {
  const n = size - 8;
  return concatBytes(Uint8Array.of(0xa2, 0x00, 0x01, 0x02), headAny(2, n), new Uint8Array(n));
}

/** {0: 1, 3: "aaa…"}: text is UTF-8 validated. */
function bigText(size: number): Uint8Array {
  const n = size - 8;
  return concatBytes(Uint8Array.of(0xa2, 0x00, 0x01, 0x03), headAny(3, n), new Uint8Array(n).fill(0x61));
}

/** {0: 1, 9: [0, 0, …]}: an unknown key whose value costs one token per byte. */
function manyTokens(size: number): Uint8Array {
  const n = size - 8;
  return concatBytes(Uint8Array.of(0xa2, 0x00, 0x01, 0x09), headAny(4, n), new Uint8Array(n));
}

/** {0: 1, 9: [[h'', "", {}], …]}: nested containers and zero-length strings, 4 bytes per element. */
function manySmallContainers(size: number): Uint8Array {
  const n = Math.floor((size - 8) / 4);
  const item = Uint8Array.of(0x83, 0x40, 0x60, 0xa0);
  const body = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) body.set(item, i * 4);
  return concatBytes(Uint8Array.of(0xa2, 0x00, 0x01, 0x09), headAny(4, n), body);
}

/** manyTokens with one trailing byte: the whole input is walked before the rejection. */
function manyTokensThenTrailing(size: number): Uint8Array {
  return concatBytes(manyTokens(size - 1), Uint8Array.of(0x00));
}

function decodeOnce(bytes: Uint8Array): void {
  try {
    decodeMap(schema, bytes);
  } catch (err) {
    if (!(err instanceof CodecError)) throw err;
  }
}

/** Nanoseconds per input byte for one round that decodes at least `bytesPerRound` bytes. */
function roundNsPerByte(bytes: Uint8Array): number {
  const iterations = Math.max(1, Math.ceil(BYTES_PER_ROUND / bytes.length));
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) decodeOnce(bytes);
  return Number(process.hrtime.bigint() - start) / (iterations * bytes.length);
}

/**
 * Best-of-rounds per-byte cost of `large` over that of `small`. The rounds alternate, so a burst
 * of load from other processes hits both sizes rather than only the one measured at the time.
 */
function perByteRatio(small: Uint8Array, large: Uint8Array): number {
  roundNsPerByte(small); // warm up the JIT on both shapes
  roundNsPerByte(large);
  let [bestSmall, bestLarge] = [Infinity, Infinity];
  for (let round = 0; round < ROUNDS; round++) {
    bestSmall = Math.min(bestSmall, roundNsPerByte(small));
    bestLarge = Math.min(bestLarge, roundNsPerByte(large));
  }
  return bestLarge / bestSmall;
}

describe('decode cost grows linearly with input size', () => {
  test.each([
    ['one large byte string', bigBytes, true],
    ['one large text string', bigText, true],
    ['one token per byte in an unknown field', manyTokens, true],
    ['many small nested containers', manySmallContainers, true],
    ['one token per byte, rejected at the last byte', manyTokensThenTrailing, false],
  ] as const)('%s', (_name, build, valid) => {
    const small = build(SMALL);
    const large = build(LARGE);
    // The inputs are what they claim to be, so the timing is of the intended path.
    if (valid) {
      expect(decodeMap(schema, small).n).toBe(1);
      expect(decodeMap(schema, large).n).toBe(1);
    } else {
      expect(() => decodeMap(schema, large)).toThrow(/trailing bytes/);
    }
    const ratio = perByteRatio(small, large);
    if (process.env.RELAY_GROWTH_REPORT)
      console.log(`${_name}: large/small per-byte cost ratio ${ratio.toFixed(2)}`);
    expect(ratio).toBeLessThan(MAX_RATIO);
  });
});
