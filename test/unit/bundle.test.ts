import fc from 'fast-check';
import { asPowBits, asUnixSeconds, type PowBits, type UnixSeconds } from '../../framework/relay/brand.js';
import { concatBytes, fromHex, toHex, utf8 } from '../../framework/relay/bytes.js';
import {
  decodeKeyBundle,
  encodeKeyBundle,
  nextIssuedAt,
  signKeyBundle,
  verifyKeyBundle,
  type KeyBundle,
  type KeyPackageVerifier,
  type UnsignedKeyBundle,
} from '../../framework/relay/bundle.js';
import { ArgumentError, CodecError, ProtocolError, VerificationError } from '../../framework/relay/errors.js';
import {
  credentialIdentity,
  ed25519Sign,
  ed25519Verify,
  identityFromSecrets,
  type Identity,
} from '../../framework/relay/identity.js';

const hex = (h: string): Uint8Array => fromHex(h.replace(/\s+/g, ''));
const seed = (b: number): Uint8Array => new Uint8Array(32).fill(b);
const alice = identityFromSecrets(seed(1), seed(2));
const mallory = identityFromSecrets(seed(7), seed(8));
const NOW = asUnixSeconds(1_795_840_000);

/**
 * DANGEROUS test double: accepts any KeyPackage bytes and reports the given credential, skipping every
 * check RFC 9420 §10.1 requires. Only for exercising the bundle rules around the real verifier.
 */
function unsafeAcceptingVerifier(
  identityKey: Uint8Array,
  credential: Uint8Array = credentialIdentity(alice.userId),
): KeyPackageVerifier {
  return { verifyKeyPackage: () => Promise.resolve({ identityKey, credentialIdentity: credential }) };
}

/** DANGEROUS test double: fails with the given error, as a KeyPackage check or a library bug would. */
function unsafeFailingVerifier(err: unknown): KeyPackageVerifier {
  return { verifyKeyPackage: () => Promise.reject(err) };
}

const fields = (over: Partial<UnsignedKeyBundle> = {}): UnsignedKeyBundle => ({
  keyPackage: hex('0001000200030004'),
  sealedSenderKey: alice.sealPublic,
  issuedAt: NOW,
  powBits: asPowBits(18),
  ...over,
});

const signed = (over: Partial<UnsignedKeyBundle> = {}, who: Identity = alice): Uint8Array =>
  encodeKeyBundle(signKeyBundle(fields(over), who));

const verify = (bytes: Uint8Array, opts: { last?: UnixSeconds; verifier?: KeyPackageVerifier } = {}) =>
  verifyKeyBundle(bytes, alice.userId, {
    now: NOW,
    ...(opts.last !== undefined ? { lastAcceptedIssuedAt: opts.last } : {}),
    verifier: opts.verifier ?? unsafeAcceptingVerifier(alice.signingPublic),
  });

describe('KeyBundle encoding (PROTOCOL.md §4)', () => {
  test('wire layout and the signed bytes', () => {
    const b = signKeyBundle(fields(), alice);
    const bytes = encodeKeyBundle(b);
    const withoutSig =
      'a5' + '0001' + '01480001000200030004' + '025820' + toHex(alice.sealPublic) + '031a6b0a5800' + '0412';
    // The map with key 5 sits between keys 4 and 6, in key order.
    expect(toHex(bytes)).toBe('a6' + withoutSig.slice(2) + '055840' + toHex(b.signature));
    // Independent check of what is signed: "relay-bundle-v1" || CBOR(map without key 5).
    expect(
      ed25519Verify(alice.signingPublic, concatBytes(utf8('relay-bundle-v1'), hex(withoutSig)), b.signature),
    ).toBe(true);
  });

  test('round trip (property)', () => {
    const arb = fc.record(
      {
        keyPackage: fc.uint8Array({ minLength: 1, maxLength: 500 }),
        sealedSenderKey: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        issuedAt: fc.nat().map(asUnixSeconds),
        powBits: fc.integer({ min: 0, max: 32 }).map(asPowBits),
        displayName: fc.string({ maxLength: 16 }),
        signature: fc.uint8Array({ minLength: 64, maxLength: 64 }),
      },
      { requiredKeys: ['keyPackage', 'sealedSenderKey', 'issuedAt', 'powBits', 'signature'] },
    );
    fc.assert(
      fc.property(arb, (b: KeyBundle) => {
        const bytes = encodeKeyBundle(b);
        expect(decodeKeyBundle(bytes)).toEqual(b);
      }),
    );
  });

  test('arbitrary and mutated bytes throw only CodecError', () => {
    const base = signed({ displayName: 'bot' });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(255), (junk, at, byte) => {
        const m = base.slice();
        m[at % m.length] = byte;
        for (const input of [junk, m]) {
          try {
            decodeKeyBundle(input);
          } catch (err) {
            expect(err).toBeInstanceOf(CodecError);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  test.each([
    ['pow_bits 33', (s: string) => s.replace('0412', '041821'), /powBits: value 33 out of range/],
    [
      'a sealed-sender key of 31 bytes',
      (s: string) =>
        s.replace('025820' + toHex(alice.sealPublic), '02581f' + toHex(alice.sealPublic).slice(2)),
      /sealedSenderKey: bad length/,
    ],
    ['version 2', (s: string) => s.replace('a60001', 'a60002'), /version: value 2 out of range/],
  ])('decoder rejects %s', (_name, edit, reason) => {
    const bytes = hex(edit(toHex(signed())));
    expect(() => decodeKeyBundle(bytes)).toThrow(CodecError);
    expect(() => decodeKeyBundle(bytes)).toThrow(reason);
  });

  test('display name: at most 64 UTF-8 bytes, valid UTF-8', () => {
    const name64 = 'é'.repeat(32);
    expect(decodeKeyBundle(signed({ displayName: name64 })).displayName).toBe(name64);
    expect(() => signKeyBundle(fields({ displayName: name64 + 'x' }), alice)).toThrow(ArgumentError);
    // Hand-made bundles with a 65-byte name and with invalid UTF-8 (the signature does not matter).
    const base = toHex(encodeKeyBundle({ ...signKeyBundle(fields(), alice), displayName: 'a' }));
    const long = hex(base.replace(/a7(.*)066161$/, 'a7$1067841' + '61'.repeat(65)));
    expect(() => decodeKeyBundle(long)).toThrow(/displayName: longer than 64 bytes/);
    const bad = hex(base.replace(/066161$/, '0662c328'));
    expect(() => decodeKeyBundle(bad)).toThrow(/displayName: invalid UTF-8/);
  });

  test('signKeyBundle refuses out-of-range fields', () => {
    expect(() => signKeyBundle(fields({ powBits: 33 as PowBits }), alice)).toThrow(ArgumentError);
    expect(() => signKeyBundle(fields({ sealedSenderKey: new Uint8Array(31) }), alice)).toThrow(
      ArgumentError,
    );
  });
});

describe('verifyKeyBundle', () => {
  test('accepts a valid bundle and returns the credential key', async () => {
    const r = await verify(signed({ displayName: 'Echo Bot' }));
    expect(r.redelivery).toBe(false);
    expect(r.bundle.displayName).toBe('Echo Bot');
    expect(r.bundle.powBits).toBe(18);
    expect(toHex(r.identityKey)).toBe(toHex(alice.signingPublic));
  });

  test('newer-only: older is a ProtocolError, equal is a redelivery, newer is fresh', async () => {
    const bytes = signed();
    await expect(verify(bytes, { last: asUnixSeconds(NOW + 1) })).rejects.toThrow(ProtocolError);
    expect((await verify(bytes, { last: NOW })).redelivery).toBe(true);
    expect((await verify(bytes, { last: asUnixSeconds(NOW - 1) })).redelivery).toBe(false);
  });

  test('a bundle signed by another key fails', async () => {
    await expect(verify(signed({}, mallory))).rejects.toThrow(/signature does not verify/);
  });

  test('every covered field is bound by the signature', async () => {
    const b = signKeyBundle(fields({ displayName: 'Echo' }), alice);
    const tampered: KeyBundle[] = [
      { ...b, keyPackage: hex('0001000200030005') },
      { ...b, sealedSenderKey: mallory.sealPublic },
      { ...b, issuedAt: asUnixSeconds(NOW + 1) },
      { ...b, powBits: asPowBits(0) },
      { ...b, displayName: 'Echo!' },
      (({ displayName: _d, ...rest }) => rest)(b),
    ];
    for (const t of tampered) {
      await expect(verify(encodeKeyBundle(t))).rejects.toThrow(VerificationError);
    }
  });

  test('a credential identity other than the topic user id fails', async () => {
    const v = unsafeAcceptingVerifier(alice.signingPublic, credentialIdentity(mallory.userId));
    await expect(verify(signed(), { verifier: v })).rejects.toThrow(/credential identity/);
  });

  test('a user id that does not derive from the credential key fails', async () => {
    // Mallory claims Alice's identity string but signs with her own key.
    const v = unsafeAcceptingVerifier(mallory.signingPublic, credentialIdentity(alice.userId));
    await expect(verify(signed({}, mallory), { verifier: v })).rejects.toThrow(/does not derive/);
  });

  test('a non-Ed25519 credential key fails', async () => {
    const v = unsafeAcceptingVerifier(new Uint8Array(33));
    await expect(verify(signed(), { verifier: v })).rejects.toThrow(VerificationError);
  });

  test('verifier failures: typed errors pass through, anything else becomes VerificationError', async () => {
    const typed = new VerificationError('KeyPackage lifetime expired');
    await expect(verify(signed(), { verifier: unsafeFailingVerifier(typed) })).rejects.toBe(typed);
    await expect(
      verify(signed(), { verifier: unsafeFailingVerifier(new TypeError('boom')) }),
    ).rejects.toThrow(VerificationError);
  });

  test('malformed bytes are a CodecError before the verifier runs', async () => {
    let called = false;
    const spy: KeyPackageVerifier = {
      verifyKeyPackage: () => {
        called = true;
        return Promise.reject(new Error('should not run'));
      },
    };
    await expect(verify(new Uint8Array([0xa0]), { verifier: spy })).rejects.toThrow(CodecError);
    expect(called).toBe(false);
  });

  test('fields added by a later version stay covered by the signature', async () => {
    // A v1-compatible bundle with an extra key 8 (unknown; key 7 is the profile), signed over all keys but 5 as the rule says.
    const b = signKeyBundle(fields(), alice);
    const base = toHex(encodeKeyBundle(b));
    const withoutSig = 'a6' + base.slice(2, base.indexOf('055840')) + '0843010203';
    const sig = ed25519Sign(alice.signingSeed, concatBytes(utf8('relay-bundle-v1'), hex(withoutSig)));
    const wire = hex('a7' + withoutSig.slice(2, -10) + '055840' + toHex(sig) + '0843010203');
    expect((await verify(wire)).bundle.powBits).toBe(18);
    // Changing the unknown field breaks the signature.
    const changed = hex(toHex(wire).replace(/0843010203$/, '0843010204'));
    await expect(verify(changed)).rejects.toThrow(/signature does not verify/);
  });
});

describe('nextIssuedAt', () => {
  test('max(now, last + 1)', () => {
    expect(nextIssuedAt(100)).toBe(100);
    expect(nextIssuedAt(100, 50)).toBe(100);
    expect(nextIssuedAt(100, 100)).toBe(101);
    expect(nextIssuedAt(100, 200)).toBe(201);
    expect(() => nextIssuedAt(1.5)).toThrow(ArgumentError);
  });
});
