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
 * does not have. Node 20 checks only that `x` is a string and builds the key from `d` (OpenSSL
 * derives the public half), so an empty `x` is passed; Node 26 refuses an empty `x` (README, Node
 * lines). Which of the two this runtime does is probed once when the module loads, on the RFC 7748
 * §6.1 key pair: the JWK import is used only where it gives that key pair's public key; elsewhere
 * every private key goes through PKCS#8 as before (slower, never wrong). The probe's answer is a
 * property of the runtime, fixed for the process. test/unit/okp-import.test.ts checks both paths
 * give the same keys.
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

function importJwkPrivate(crv: OkpCurve, secret: Uint8Array): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv, d: base64url(secret), x: '' }, format: 'jwk' });
}

/** Known pairs: RFC 7748 §6.1 (Alice's X25519 keys) and RFC 8032 §7.1 TEST 1 (Ed25519). */
const PROBES: Array<[OkpCurve, string, string]> = [
  [
    'X25519',
    '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a',
    '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
  ],
  [
    'Ed25519',
    '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
  ],
];

/** Whether a private JWK with an empty `x` imports, as the key `d` says, on this runtime. */
function jwkPrivateImportWorks(): boolean {
  try {
    return PROBES.every(([crv, secret, expected]) =>
      createPublicKey(importJwkPrivate(crv, Buffer.from(secret, 'hex'))).equals(
        importOkpPublic(crv, Buffer.from(expected, 'hex')),
      ),
    );
  } catch {
    return false;
  }
}

/** The import importOkpPrivate uses here: 'jwk' where the probe above passed, else 'pkcs8'. */
export const PRIVATE_IMPORT: 'jwk' | 'pkcs8' = jwkPrivateImportWorks() ? 'jwk' : 'pkcs8';

/** The 32-byte private key (X25519 scalar or Ed25519 seed); the caller checks the length. */
export function importOkpPrivate(crv: OkpCurve, secret: Uint8Array): KeyObject {
  return PRIVATE_IMPORT === 'jwk' ? importJwkPrivate(crv, secret) : importPkcs8(crv, secret);
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
