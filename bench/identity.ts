/**
 * A fresh signing identity for the MLS engine benches: they build sessions on the engine directly,
 * with no RelayClient to make one for them.
 */
import { generateKeyPairSync } from 'node:crypto';
import { userIdFromKey, type SigningIdentity } from '../framework/relay/mls/index.js';

export function identity(): SigningIdentity {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  const signingPublic = new Uint8Array(spki.subarray(spki.length - 32));
  return {
    userId: userIdFromKey(signingPublic),
    signingSeed: new Uint8Array(pkcs8.subarray(pkcs8.length - 32)),
    signingPublic,
  };
}
