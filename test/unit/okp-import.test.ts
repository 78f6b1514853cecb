/**
 * okp-import.ts: the JWK import of raw X25519 / Ed25519 keys must give the very key the PKCS#8 /
 * SPKI import gave before (same public key, same DH outputs, same signatures), whatever `x` says.
 */
import { createPublicKey, diffieHellman, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import {
  PRIVATE_IMPORT,
  importOkpPrivate,
  importOkpPublic,
  importPkcs8,
} from '../../framework/relay/okp-import.js';

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

test('the import picked for this runtime gives the RFC 7748 / RFC 8032 public keys; JWK on Node 20', () => {
  const hex = (h: string): Buffer => Buffer.from(h, 'hex');
  const x = importOkpPrivate(
    'X25519',
    hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'),
  );
  expect(
    createPublicKey(x).equals(
      importOkpPublic('X25519', hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f')),
    ),
  ).toBe(true);
  const ed = importOkpPrivate(
    'Ed25519',
    hex('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb'),
  );
  expect(
    createPublicKey(ed).equals(
      importOkpPublic('Ed25519', hex('3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c')),
    ),
  ).toBe(true);
  // Node 26 refuses a private JWK with an empty x (README); there the PKCS#8 import is the path.
  if (Number(process.versions.node.split('.')[0]) === 20) expect(PRIVATE_IMPORT).toBe('jwk');
});
