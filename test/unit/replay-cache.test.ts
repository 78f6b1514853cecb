import { asUnixSeconds } from '../../framework/relay/brand.js';
import { ReplayCache, replayDigest } from '../../framework/relay/replay-cache.js';
import { powChallenge, powChallengeForDigest } from '../../framework/relay/pow.js';

const t = asUnixSeconds;

describe('ReplayCache', () => {
  test('a claim settled with keep is seen until it expires, then forgotten', () => {
    const cache = new ReplayCache();
    expect(cache.lookup('a', t(100))).toBe('unseen');
    cache.claim('a', t(200)).settle(true);
    expect(cache.lookup('a', t(200))).toBe('seen');
    expect(cache.lookup('a', t(201))).toBe('unseen');
    expect(cache.size).toBe(0);
  });

  test('a copy arriving while the first is in flight waits for its outcome', async () => {
    const cache = new ReplayCache();
    const claim = cache.claim('a', t(200));
    const found = cache.lookup('a', t(100));
    expect(typeof found).toBe('object');
    claim.settle(true);
    await (found as { inFlight: Promise<void> }).inFlight;
    expect(cache.lookup('a', t(100))).toBe('seen');
  });

  test('a claim released without an outcome lets the redelivery through; the first settle wins', () => {
    const cache = new ReplayCache();
    const claim = cache.claim('a', t(200));
    claim.settle(false);
    claim.settle(true);
    expect(cache.lookup('a', t(100))).toBe('unseen');
  });

  test('bounded: the oldest settled entries go first, entries in flight stay', () => {
    const cache = new ReplayCache(3);
    const inFlight = cache.claim('first', t(200));
    for (const k of ['b', 'c', 'd', 'e']) cache.record(k, t(200));
    expect(cache.size).toBe(3);
    expect(typeof cache.lookup('first', t(100))).toBe('object');
    expect(cache.lookup('b', t(100))).toBe('unseen');
    expect(cache.lookup('c', t(100))).toBe('unseen');
    expect(cache.lookup('e', t(100))).toBe('seen');
    inFlight.settle(true);
  });

  test('the key is SHA-256(enc || ciphertext), the digest inside the PoW challenge', () => {
    const enc = new Uint8Array(32).fill(1);
    const ciphertext = new Uint8Array(100).fill(2);
    const id = new Uint8Array(16).fill(3) as Parameters<typeof powChallenge>[0];
    expect(powChallengeForDigest(id, t(5), replayDigest(enc, ciphertext))).toEqual(
      powChallenge(id, t(5), enc, ciphertext),
    );
  });
});
