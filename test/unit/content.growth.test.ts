/**
 * §8 content decoding cost grows linearly with input size (PROTOCOL.md §10), like the CBOR decoder's
 * (codec.growth.test.ts, whose method this follows): per-byte cost at 4 KiB and 64 KiB as a ratio,
 * best of alternating rounds, no absolute times. Shapes: a long text, inline attachment data (base64
 * decode, canonical check and SHA-256) and ten buttons with long labels. Unknown fields are not
 * measured: our code never walks them, only V8's JSON.parse does.
 */
import { createHash } from 'node:crypto';
import { decodeContent } from '../../framework/relay/content.js';
import { CodecError } from '../../framework/relay/errors.js';

const SMALL = 4 * 1024;
const LARGE = 64 * 1024;
/** Same bound and reasoning as codec.growth.test.ts: quadratic would be ~16x here, linear ~1. */
const MAX_RATIO = 8;
const ROUNDS = 7;
const BYTES_PER_ROUND = 2 * 1024 * 1024;

const json = (o: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(o));

const longText = (size: number) => json({ content: 'a'.repeat(size - 20), id: 'm1' });

function inlineAttachment(size: number): Uint8Array {
  const data = new Uint8Array(Math.floor(((size - 200) * 3) / 4)).fill(0x5a);
  return json({
    type: 'attachment',
    name: 'f',
    mime: 'application/octet-stream',
    size: data.length,
    sha256: createHash('sha256').update(data).digest('hex'),
    data: Buffer.from(data).toString('base64'),
  });
}

const tenButtons = (size: number) =>
  json({
    type: 'actions',
    content: 'pick',
    actions: Array.from({ length: 10 }, (_, i) => ({ id: `b${i}`, label: 'l'.repeat((size - 300) / 10) })),
  });

/** A known type whose last check fails: everything before it is walked. */
const badDigestAtTheEnd = (size: number) => {
  const valid = JSON.parse(new TextDecoder().decode(inlineAttachment(size))) as Record<string, unknown>;
  return json({ ...valid, sha256: '00'.repeat(32) });
};

function decodeOnce(bytes: Uint8Array): void {
  try {
    decodeContent(bytes);
  } catch (err) {
    if (!(err instanceof CodecError)) throw err;
  }
}

function roundNsPerByte(bytes: Uint8Array): number {
  const iterations = Math.max(1, Math.ceil(BYTES_PER_ROUND / bytes.length));
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) decodeOnce(bytes);
  return Number(process.hrtime.bigint() - start) / (iterations * bytes.length);
}

function perByteRatio(small: Uint8Array, large: Uint8Array): number {
  roundNsPerByte(small);
  roundNsPerByte(large);
  let [bestSmall, bestLarge] = [Infinity, Infinity];
  for (let round = 0; round < ROUNDS; round++) {
    bestSmall = Math.min(bestSmall, roundNsPerByte(small));
    bestLarge = Math.min(bestLarge, roundNsPerByte(large));
  }
  return bestLarge / bestSmall;
}

describe('content decode cost grows linearly with input size', () => {
  test.each([
    ['a long text', longText, true],
    ['inline attachment data', inlineAttachment, true],
    ['ten buttons with long labels', tenButtons, true],
    ['inline data whose digest fails at the end', badDigestAtTheEnd, false],
  ] as const)('%s', (name, build, valid) => {
    const small = build(SMALL);
    const large = build(LARGE);
    expect(large.length).toBeGreaterThan(LARGE * 0.9);
    expect(large.length).toBeLessThanOrEqual(LARGE * 1.4);
    if (valid) expect(decodeContent(large)).toBeDefined();
    else expect(() => decodeContent(large)).toThrow(/sha256/);
    const ratio = perByteRatio(small, large);
    if (process.env.RELAY_GROWTH_REPORT)
      console.log(`${name}: large/small per-byte cost ratio ${ratio.toFixed(2)}`);
    expect(ratio).toBeLessThan(MAX_RATIO);
  });
});
