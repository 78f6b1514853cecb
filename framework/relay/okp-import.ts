/**
 * Raw X25519 / Ed25519 keys (RFC 7748, RFC 8032) into node:crypto KeyObjects, by the cheapest
 * import Node 20 has.
 *
 * Why JWK (RFC 8037 "OKP") rather than the PKCS#8 / SPKI DER these keys used to go through: Node 20
 * has no raw import, and its DER import runs OpenSSL 3's generic decoder chain, which tries decoder
 * after decoder. Measured on the 2-core bench machine (process CPU per import, bench/crypto-bound.ts
 * prints it): a PKCS#8 private key ~400–500 µs against ~45–60 µs as JWK; an SPKI public key ~80–130
 * µs against ~8–15 µs. A JWK import goes straight to EVP_PKEY_new_raw_{private,public}_key.
 *
 * Only imports happen here: no key is exported, and an imported key was made by no key-generation
 * job, so the Node 20 export deadlock of x25519-node.ts cannot involve these keys.
 *
 * A private OKP JWK must carry `x`, the public key, which a caller holding only the 32-byte secret
 * does not have. Node validates that `x` is a string and builds the key from `d` alone (OpenSSL
 * derives the public half from the private one), so an empty `x` is passed. Should a later Node
 * start checking `x` against `d`, the JWK import throws and the PKCS#8 import below takes over:
 * slower, never wrong. test/unit/okp-import.test.ts checks both paths give the same key.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

export type OkpCurve = 'X25519' | 'Ed25519';

/** RFC 8410 §7 OneAsymmetricKey prefixes (version 0, the curve's OID, OCTET STRING of 32). */
const PKCS8_PREFIX: Record<OkpCurve, Buffer> = {
  X25519: Buffer.from('302e020100300506032b656e04220420', 'hex'),
  Ed25519: Buffer.from('302e020100300506032b657004220420', 'hex'),
};

function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** The 32-byte private key (X25519 scalar or Ed25519 seed); the caller checks the length. */
export function importOkpPrivate(crv: OkpCurve, secret: Uint8Array): KeyObject {
  try {
    return createPrivateKey({ key: { kty: 'OKP', crv, d: base64url(secret), x: '' }, format: 'jwk' });
  } catch {
    return importPkcs8(crv, secret);
  }
}

/** The same key through PKCS#8 DER: the fallback, and the reference the tests compare with. */
export function importPkcs8(crv: OkpCurve, secret: Uint8Array): KeyObject {
  const der = Buffer.concat([PKCS8_PREFIX[crv], secret]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

/** The 32-byte public key; throws (TypeError or a crypto error) when Node refuses the bytes. */
export function importOkpPublic(crv: OkpCurve, publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv, x: base64url(publicKey) }, format: 'jwk' });
}
