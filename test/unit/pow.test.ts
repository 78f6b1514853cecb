import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { asUnixSeconds, asUserId } from '../../framework/relay/brand.js';
import { fromHex, toHex, u64le } from '../../framework/relay/bytes.js';
import { ArgumentError } from '../../framework/relay/errors.js';
import {
  PowMiner,
  leadingZeroBits,
  mineSync,
  powChallenge,
  powHash,
  verifyPow,
} from '../../framework/relay/pow.js';
import {
  hasPowEngine,
  midstateHash,
  powMidstate,
  type PowEngine,
} from '../../framework/relay/sha256-midstate.js';

interface Vectors {
  recipient: { user_id: string };
  envelope_with_pow: {
    enc: string;
    ciphertext: string;
    challenge: string;
    bits: number;
    smallest_nonce: number;
    hash: string;
  };
  envelope_with_token: { enc: string; ciphertext: string };
  pow_on_token_envelope_bytes: { challenge: string; bits: number; smallest_nonce: number };
}

const vectors = JSON.parse(
  readFileSync(new URL('../vectors/protocol.json', import.meta.url), 'utf8'),
) as Vectors;
const SENT_AT = asUnixSeconds(1795840000);
const recipient = asUserId(fromHex(vectors.recipient.user_id));
const engines = (['wasm-simd', 'js'] as const).filter(hasPowEngine);

function nodeSha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** Reference: the smallest valid nonce in [start, start + tries), one native SHA-256 per try. */
function referenceMine(
  challenge: Uint8Array,
  bits: number,
  start: bigint,
  tries: number,
): bigint | undefined {
  for (let n = start; n < start + BigInt(tries) && n < 2n ** 64n; n++) {
    if (leadingZeroBits(nodeSha256(challenge, u64le(n))) >= bits) return n;
  }
  return undefined;
}

describe('PROTOCOL.md §5 vectors', () => {
  const v = vectors.envelope_with_pow;
  const challenge = powChallenge(recipient, SENT_AT, fromHex(v.enc), fromHex(v.ciphertext));

  test('envelope_with_pow: challenge, hash, smallest nonce', () => {
    expect(challenge.length).toBe(68);
    expect(toHex(challenge)).toBe(v.challenge);
    expect(toHex(powHash(challenge, BigInt(v.smallest_nonce)))).toBe(v.hash);
    expect(verifyPow(challenge, BigInt(v.smallest_nonce), v.bits)).toBe(true);
    expect(verifyPow(challenge, BigInt(v.smallest_nonce - 1), v.bits)).toBe(false);
    for (const engine of engines) expect(mineSync(challenge, v.bits, 0n, undefined, engine)).toBe(1738n);
  });

  test('pow_on_token_envelope_bytes: challenge over the token envelope, smallest nonce', () => {
    const t = vectors.envelope_with_token;
    const p = vectors.pow_on_token_envelope_bytes;
    const c = powChallenge(recipient, SENT_AT, fromHex(t.enc), fromHex(t.ciphertext));
    expect(toHex(c)).toBe(p.challenge);
    for (const engine of engines) expect(mineSync(c, p.bits, 0n, undefined, engine)).toBe(18775n);
    expect(verifyPow(c, 18775n, p.bits)).toBe(true);
  });

  test('the nonce is bound to the recipient and the time', () => {
    const other = asUserId(fromHex('00'.repeat(16)));
    const toOther = powChallenge(other, SENT_AT, fromHex(v.enc), fromHex(v.ciphertext));
    const later = powChallenge(recipient, asUnixSeconds(SENT_AT + 1), fromHex(v.enc), fromHex(v.ciphertext));
    expect(verifyPow(toOther, 1738n, 12)).toBe(false);
    expect(verifyPow(later, 1738n, 12)).toBe(false);
  });

  test('one bit short fails', () => {
    const bits = leadingZeroBits(fromHex(v.hash));
    expect(bits).toBe(15);
    expect(verifyPow(challenge, 1738n, bits)).toBe(true);
    expect(verifyPow(challenge, 1738n, bits + 1)).toBe(false);
  });

  test('nonces outside uint64 are no proof; bad arguments throw', () => {
    expect(verifyPow(challenge, 2n ** 64n, 0)).toBe(false);
    expect(verifyPow(challenge, -1n, 0)).toBe(false);
    expect(verifyPow(challenge, 2n ** 64n - 1n, 0)).toBe(true);
    expect(() => verifyPow(challenge.subarray(0, 67), 0n, 0)).toThrow(ArgumentError);
    expect(() => verifyPow(challenge, 0n, 33)).toThrow(ArgumentError);
    expect(() => verifyPow(challenge, 0n, 1.5)).toThrow(ArgumentError);
    expect(() => powHash(challenge, 2n ** 64n)).toThrow(ArgumentError);
  });
});

describe('leadingZeroBits', () => {
  test.each([
    ['', 0],
    ['80', 0],
    ['ff', 0],
    ['7f', 1],
    ['01', 7],
    ['00', 8],
    ['0040', 9],
    ['000001', 23],
    ['00'.repeat(32), 256],
  ])('%s -> %d', (hex, bits) => {
    expect(leadingZeroBits(fromHex(hex))).toBe(bits);
  });
});

describe('midstate kernels', () => {
  const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
  const challenge68 = fc.uint8Array({ minLength: 68, maxLength: 68 });

  test('midstate hash equals node:crypto SHA-256', () => {
    fc.assert(
      fc.property(challenge68, u64, (challenge, nonce) => {
        const expected = toHex(nodeSha256(challenge, u64le(nonce)));
        expect(toHex(midstateHash(powMidstate(challenge), nonce))).toBe(expected);
      }),
      { numRuns: 300 },
    );
  });

  test.each(engines.map((e) => [e]))('%s search finds the same smallest nonce as node:crypto', (engine) => {
    // Starts near 2^32 and 2^64 cross the word boundary; odd tries leave partial SIMD steps.
    const start = fc.oneof(
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.bigInt({ min: 2n ** 32n - 300n, max: 2n ** 32n + 10n }),
      fc.bigInt({ min: 2n ** 64n - 300n, max: 2n ** 64n - 1n }),
    );
    fc.assert(
      fc.property(
        challenge68,
        fc.integer({ min: 1, max: 7 }),
        start,
        fc.integer({ min: 1, max: 400 }),
        (challenge, bits, from, tries) => {
          const expected = referenceMine(challenge, bits, from, tries);
          expect(mineSync(challenge, bits, from, tries, engine as PowEngine)).toBe(expected);
        },
      ),
      { numRuns: 200 },
    );
  });

  test('mineSync edge cases', () => {
    const c = new Uint8Array(68);
    expect(mineSync(c, 0, 5n)).toBe(5n);
    expect(mineSync(c, 8, 0n, 0)).toBeUndefined();
    expect(mineSync(c, 32, 2n ** 64n - 3n)).toBeUndefined(); // space exhausted, no wrap
    expect(() => mineSync(c, 33)).toThrow(ArgumentError);
    expect(() => mineSync(c, 8, 2n ** 64n)).toThrow(ArgumentError);
  });
});

describe('PowMiner', () => {
  const miners: PowMiner[] = [];
  const newMiner = (...args: ConstructorParameters<typeof PowMiner>): PowMiner => {
    const m = new PowMiner(...args);
    miners.push(m);
    return m;
  };
  afterAll(async () => {
    await Promise.all(miners.map((m) => m.close()));
  });

  test('workers find a valid 16-bit nonce, and are reused across calls', async () => {
    const miner = newMiner({ workers: 2 });
    for (let i = 0; i < 3; i++) {
      const challenge = new Uint8Array(randomBytes(68));
      const nonce = await miner.mine(challenge, 16);
      expect(verifyPow(challenge, nonce, 16)).toBe(true);
    }
  });

  test('the JavaScript engine works in a worker too', async () => {
    const miner = newMiner({ workers: 1, engine: 'js' });
    const challenge = fromHex(vectors.envelope_with_pow.challenge);
    expect(await miner.mine(challenge, 12)).toBe(1738n); // one worker scans in order
  });

  test('abort stops a search; the pool still works afterwards', async () => {
    const miner = newMiner({ workers: 2 });
    const challenge = new Uint8Array(randomBytes(68));
    const controller = new AbortController();
    const pending = miner.mine(challenge, 28, { signal: controller.signal });
    setImmediate(() => controller.abort());
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    const nonce = await miner.mine(challenge, 16);
    expect(verifyPow(challenge, nonce, 16)).toBe(true);
  });

  test('an aborted signal rejects at once, also while queued behind another search', async () => {
    const miner = newMiner({ workers: 1 });
    const challenge = new Uint8Array(randomBytes(68));
    await expect(miner.mine(challenge, 8, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      name: 'AbortError',
    });
    const first = new AbortController();
    const second = new AbortController();
    const a = miner.mine(challenge, 28, { signal: first.signal });
    const b = miner.mine(challenge, 28, { signal: second.signal });
    second.abort();
    await expect(b).rejects.toMatchObject({ name: 'AbortError' });
    first.abort();
    await expect(a).rejects.toMatchObject({ name: 'AbortError' });
  });

  test('refuses more than 28 bits and bad challenges', async () => {
    const miner = newMiner({ workers: 1 });
    await expect(miner.mine(new Uint8Array(68), 29)).rejects.toThrow(ArgumentError);
    await expect(miner.mine(new Uint8Array(67), 8)).rejects.toThrow(ArgumentError);
    expect(() => new PowMiner({ workers: -1 })).toThrow(ArgumentError);
  });

  test('in-thread mode yields to the event loop and finds the smallest nonce', async () => {
    const miner = newMiner({ workers: 0 });
    const challenge = fromHex(vectors.envelope_with_pow.challenge);
    const smallest = mineSync(challenge, 18)!;
    expect(smallest).toBeGreaterThan(2n ** 15n); // so the search spans several slices
    let turns = 0;
    let ticking = true;
    const tick = (): void => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const nonce = await miner.mine(challenge, 18);
    ticking = false;
    expect(nonce).toBe(smallest);
    expect(turns).toBeGreaterThan(0);
  });

  test('close ends a running search and later calls', async () => {
    const miner = new PowMiner({ workers: 2 });
    const challenge = new Uint8Array(randomBytes(68));
    const pending = miner.mine(challenge, 28);
    await new Promise((resolve) => setImmediate(resolve));
    await miner.close();
    await expect(pending).rejects.toThrow(ArgumentError);
    await expect(miner.mine(challenge, 4)).rejects.toThrow(ArgumentError);
    await miner.close(); // idempotent
  });
});
