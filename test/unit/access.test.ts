import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import {
  ACCESS_HINT_LENGTH,
  AccessIndex,
  accessField,
  accessHint,
  accessTag,
  hourBucket,
  verifyAccessTag,
} from '../../framework/relay/access.js';
import { asUnixSeconds, type UnixSeconds } from '../../framework/relay/brand.js';
import { concatBytes, fromHex, toHex, u64be, utf8 } from '../../framework/relay/bytes.js';
import { ArgumentError } from '../../framework/relay/errors.js';
import protocol from '../vectors/protocol.json' with { type: 'json' };

const v = protocol.access_token;
const K = fromHex(v.exporter_output_K);
const sentAt = asUnixSeconds(v.sent_at);
const enc = fromHex(protocol.envelope_with_token.enc);
const ct = fromHex(protocol.envelope_with_token.ciphertext);
const t = (n: number): UnixSeconds => asUnixSeconds(n);

describe('access token: vectors.json', () => {
  test('hour bucket, hint and tag reproduce', () => {
    expect(hourBucket(sentAt)).toBe(v.hour_bucket);
    expect(toHex(accessHint(K, sentAt))).toBe(v.hint);
    expect(toHex(accessTag(K, enc, ct, sentAt))).toBe(v.tag);
    expect(verifyAccessTag(K, enc, ct, sentAt, fromHex(v.tag))).toBe(true);
  });

  test('the access field is hint || tag, as carried in the envelope CBOR (key 4)', () => {
    const field = toHex(accessField(K, enc, ct, sentAt));
    expect(field).toBe(v.hint + v.tag);
    // 0x04 key, 0x54 = byte string of 20.
    expect(protocol.envelope_with_token.cbor).toContain(`0454${field}`);
  });

  test('the hint is the same for every second of the hour and changes with it', () => {
    const start = v.hour_bucket * 3600;
    expect(toHex(accessHint(K, t(start)))).toBe(v.hint);
    expect(toHex(accessHint(K, t(start + 3599)))).toBe(v.hint);
    expect(toHex(accessHint(K, t(start - 1)))).not.toBe(v.hint);
    expect(toHex(accessHint(K, t(start + 3600)))).not.toBe(v.hint);
  });
});

describe('access token: a copied tag is worthless', () => {
  const tag = fromHex(v.tag);
  test('on other ciphertext, enc, time or key', () => {
    const powCt = fromHex(protocol.envelope_with_pow.ciphertext);
    expect(verifyAccessTag(K, enc, powCt, sentAt, tag)).toBe(false);
    const otherEnc = enc.slice();
    otherEnc[0]! ^= 1;
    expect(verifyAccessTag(K, otherEnc, ct, sentAt, tag)).toBe(false);
    const otherCt = ct.slice();
    otherCt[ct.length - 1]! ^= 0x80;
    expect(verifyAccessTag(K, enc, otherCt, sentAt, tag)).toBe(false);
    expect(verifyAccessTag(K, enc, ct, t(sentAt + 1), tag)).toBe(false);
    const otherK = K.slice();
    otherK[31]! ^= 1;
    expect(verifyAccessTag(otherK, enc, ct, sentAt, tag)).toBe(false);
  });

  test('a tag of the wrong length or with one flipped bit', () => {
    expect(verifyAccessTag(K, enc, ct, sentAt, tag.subarray(0, 15))).toBe(false);
    expect(verifyAccessTag(K, enc, ct, sentAt, concatBytes(tag, new Uint8Array(1)))).toBe(false);
    const flipped = tag.slice();
    flipped[7]! ^= 4;
    expect(verifyAccessTag(K, enc, ct, sentAt, flipped)).toBe(false);
  });

  test('a moved enc/ciphertext boundary does not verify (SHA-256 over ciphertext separates them)', () => {
    const movedEnc = concatBytes(enc, ct.subarray(0, 1));
    expect(verifyAccessTag(K, movedEnc, ct.subarray(1), sentAt, tag)).toBe(false);
  });
});

describe('access token: independent computation with noble', () => {
  test('hint and tag equal a direct HMAC-SHA256 over the protocol formula', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 400 }),
        fc.integer({ min: 0, max: 2 ** 40 }),
        (k, e, c, s) => {
          const at = t(s);
          const hint = hmac(sha256, k, concatBytes(utf8('hint'), u64be(Math.floor(s / 3600)))).slice(0, 4);
          const tag = hmac(sha256, k, concatBytes(utf8('tag'), e, sha256(c), u64be(s))).slice(0, 16);
          expect(toHex(accessHint(k, at))).toBe(toHex(hint));
          expect(toHex(accessTag(k, e, c, at))).toBe(toHex(tag));
        },
      ),
      { numRuns: 200 },
    );
  });

  test('argument checks', () => {
    expect(() => accessHint(new Uint8Array(31), sentAt)).toThrow(ArgumentError);
    expect(() => accessTag(K, enc, ct, -1 as UnixSeconds)).toThrow(ArgumentError);
    expect(() => new AccessIndex().setSession('s', { current: new Uint8Array(16) })).toThrow(ArgumentError);
  });
});

describe('AccessIndex', () => {
  const key = (n: number): Uint8Array => new Uint8Array(32).fill(n);
  const K0 = key(0x10);
  const K1 = key(0x11);
  const K2 = key(0x22);

  test('finds current and previous epoch keys; a replaced or removed session is gone', () => {
    const index = new AccessIndex();
    const now = t(v.sent_at + 5);
    index.setSession('alice', { current: K1, previous: K0 });
    index.setSession('bob', { current: K2 });

    expect(index.lookup(accessHint(K1, sentAt), sentAt, now)).toEqual([
      { sessionId: 'alice', key: K1, epoch: 'current' },
    ]);
    expect(index.lookup(accessHint(K0, sentAt), sentAt, now)).toEqual([
      { sessionId: 'alice', key: K0, epoch: 'previous' },
    ]);
    expect(index.lookup(accessHint(K2, sentAt), sentAt, now)).toEqual([
      { sessionId: 'bob', key: K2, epoch: 'current' },
    ]);
    expect(index.lookup(accessHint(key(0x99), sentAt), sentAt, now)).toEqual([]);

    // Epoch advances: K1 becomes previous, K0 disappears.
    const K3 = key(0x33);
    index.setSession('alice', { current: K3, previous: K1 });
    expect(index.lookup(accessHint(K0, sentAt), sentAt, now)).toEqual([]);
    expect(index.lookup(accessHint(K1, sentAt), sentAt, now)[0]?.epoch).toBe('previous');
    expect(index.lookup(accessHint(K3, sentAt), sentAt, now)[0]?.epoch).toBe('current');

    index.removeSession('alice');
    expect(index.lookup(accessHint(K3, sentAt), sentAt, now)).toEqual([]);
    expect(index.lookup(accessHint(K1, sentAt), sentAt, now)).toEqual([]);
    expect(index.lookup(accessHint(K2, sentAt), sentAt, now)).toHaveLength(1);
    expect(index.size).toBe(1);
    // The index kept copies: wiping its own does not touch the caller's keys.
    expect(toHex(K3)).toBe('33'.repeat(32));
  });

  test('setting the same keys again keeps the entries as they are; dropping the previous key removes it', () => {
    const index = new AccessIndex();
    const now = t(v.sent_at + 5);
    index.setSession('alice', { current: K1, previous: K0 });
    const before = index.lookup(accessHint(K1, sentAt), sentAt, now)[0];
    // Every processed message re-indexes its session with unchanged keys: nothing is recomputed.
    index.setSession('alice', { current: key(0x11), previous: key(0x10) });
    const after = index.lookup(accessHint(K1, sentAt), sentAt, now)[0];
    expect(after?.key).toBe(before?.key);
    expect(index.lookup(accessHint(K0, sentAt), sentAt, now)).toHaveLength(1);
    // Same current key without the previous one is a change, not a repeat.
    index.setSession('alice', { current: K1 });
    expect(index.lookup(accessHint(K0, sentAt), sentAt, now)).toEqual([]);
    expect(index.lookup(accessHint(K1, sentAt), sentAt, now)).toHaveLength(1);
    expect(index.size).toBe(1);
  });

  test('sessions added before and after the bucket table exists are both found', () => {
    const index = new AccessIndex();
    const now = t(v.sent_at);
    index.setSession('early', { current: K1 });
    expect(index.lookup(accessHint(K1, sentAt), sentAt, now)).toHaveLength(1);
    index.setSession('late', { current: K2 });
    expect(index.lookup(accessHint(K2, sentAt), sentAt, now)).toHaveLength(1);
  });

  test('two sessions sharing a hint both come back, and match() picks the one whose tag verifies', () => {
    const index = new AccessIndex();
    index.setSession('a', { current: K }); // the vector's key
    index.setSession('b', { current: K }); // same key, other session: forces a hint collision
    const now = t(v.sent_at + 30);
    const found = index.lookup(fromHex(v.hint), sentAt, now);
    expect(found.map((c) => c.sessionId).sort()).toEqual(['a', 'b']);

    const field = fromHex(v.hint + v.tag);
    expect(index.match(field, enc, ct, sentAt, now)?.epoch).toBe('current');
    const powCt = fromHex(protocol.envelope_with_pow.ciphertext);
    expect(index.match(field, enc, powCt, sentAt, now)).toBeUndefined();
    expect(index.match(field.subarray(0, 19), enc, ct, sentAt, now)).toBeUndefined();
  });

  test('hour boundaries: sent_at and now on different sides of the hour', () => {
    const index = new AccessIndex();
    index.setSession('s', { current: K1, previous: K0 });
    const H = 498845 * 3600;
    const cases: Array<[number, number]> = [
      [H - 50, H + 100], // sent just before the hour, received after
      [H + 50, H - 100], // sender's clock ahead, crosses the hour
      [H - 1, H], // one second apart
      [H, H - 600], // at the edge of the window
      [H - 600, H], // and the other edge
    ];
    for (const [sent, now] of cases) {
      for (const [k, epoch] of [
        [K1, 'current'],
        [K0, 'previous'],
      ] as const) {
        const found = index.lookup(accessHint(k, t(sent)), t(sent), t(now));
        expect(found).toEqual([{ sessionId: 's', key: k, epoch }]);
      }
    }
  });

  test('outside the window, or with the wrong bucket, nothing matches', () => {
    const index = new AccessIndex();
    index.setSession('s', { current: K1 });
    const H = 498845 * 3600;
    expect(index.lookup(accessHint(K1, t(H - 50)), t(H - 50), t(H + 551))).toEqual([]);
    expect(index.lookup(accessHint(K1, t(H + 700)), t(H + 700), t(H))).toEqual([]);
    // The hint of the previous hour does not match a sent_at in this hour.
    expect(index.lookup(accessHint(K1, t(H - 50)), t(H + 50), t(H + 50))).toEqual([]);
    expect(index.lookup(new Uint8Array(ACCESS_HINT_LENGTH + 1), t(H), t(H))).toEqual([]);
  });

  test('the indexed bucket set follows the clock and never exceeds two buckets', () => {
    const index = new AccessIndex();
    for (let i = 0; i < 50; i++) index.setSession(`s${i}`, { current: key(i), previous: key(100 + i) });
    const H = 498845 * 3600;
    const probe = (now: number): number[] => {
      index.lookup(new Uint8Array(4), t(now), t(now));
      return index.indexedBuckets();
    };
    expect(probe(H + 1200)).toEqual([498845]);
    expect(probe(H + 3000)).toEqual([498845, 498846]);
    expect(probe(H + 3700)).toEqual([498845, 498846]);
    expect(probe(H + 4300)).toEqual([498846]);
    // Clock stepping backwards (NTP correction) rebuilds the older bucket correctly.
    expect(probe(H + 100)).toEqual([498844, 498845]);
    const s7 = index.lookup(accessHint(key(107), t(H - 10)), t(H - 10), t(H + 100));
    expect(s7).toEqual([{ sessionId: 's7', key: key(107), epoch: 'previous' }]);
    for (let hour = 0; hour < 48; hour++) {
      for (const offset of [0, 599, 601, 3000, 3599]) {
        expect(probe(H + hour * 3600 + offset).length).toBeLessThanOrEqual(2);
      }
    }
    // After all that movement every session is still found in the current hour.
    const now = H + 48 * 3600 + 1800;
    for (let i = 0; i < 50; i++) {
      expect(index.lookup(accessHint(key(i), t(now)), t(now), t(now))[0]?.sessionId).toBe(`s${i}`);
    }
  });
});
