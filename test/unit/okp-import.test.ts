/**
 * okp-import.ts: the JWK import of raw X25519 / Ed25519 keys must give the very key the PKCS#8 /
 * SPKI import gave before (same public key, same DH outputs, same signatures), whatever `x` says.
 */
import { createPublicKey, diffieHellman, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { importOkpPrivate, importOkpPublic, importPkcs8 } from '../../framework/relay/okp-import.js';

const bytes = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

test('X25519: the JWK import is the PKCS#8 key (public half, DH both ways)', () => {
  for (let i = 0; i < 20; i++) {
    const sk = bytes(32);
    const viaJwk = importOkpPrivate('X25519', sk);
    const viaDer = importPkcs8('X25519', sk);
    const peer = generateKeyPairSync('x25519');
    const expected = diffieHellman({ privateKey: viaDer, publicKey: peer.publicKey });
    expect(diffieHellman({ privateKey: viaJwk, publicKey: peer.publicKey })).toEqual(expected);
    // The public half OpenSSL derived from d (not the empty x passed along) is the real one.
    const pub = importOkpPublic('X25519', x25519.getPublicKey(sk));
    expect(diffieHellman({ privateKey: peer.privateKey, publicKey: createPublicKey(viaJwk) })).toEqual(
      diffieHellman({ privateKey: peer.privateKey, publicKey: pub }),
    );
    expect(diffieHellman({ privateKey: peer.privateKey, publicKey: pub })).toEqual(expected);
  }
});

test('Ed25519: the JWK import signs as the seed does, and the public import verifies', () => {
  for (let i = 0; i < 20; i++) {
    const seed = bytes(32);
    const msg = bytes(40);
    const sig = sign(null, msg, importOkpPrivate('Ed25519', seed));
    expect(sig).toEqual(sign(null, msg, importPkcs8('Ed25519', seed)));
    expect(new Uint8Array(sig)).toEqual(ed25519.sign(msg, seed));
    expect(verify(null, msg, importOkpPublic('Ed25519', ed25519.getPublicKey(seed)), sig)).toBe(true);
    expect(verify(null, bytes(40), importOkpPublic('Ed25519', ed25519.getPublicKey(seed)), sig)).toBe(false);
  }
});

test('wrong lengths are refused, not truncated', () => {
  expect(() => importOkpPublic('X25519', bytes(31))).toThrow();
  expect(() => importOkpPublic('Ed25519', bytes(33))).toThrow();
  expect(() => importPkcs8('X25519', bytes(31))).toThrow();
});
