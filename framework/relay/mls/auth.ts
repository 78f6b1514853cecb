/**
 * Self-certifying MLS credentials (PROTOCOL.md §2).
 *
 * ts-mls's default authentication service accepts every credential, which would let anyone claim
 * any user id. Here a BasicCredential (RFC 9420 §5.3) is valid only when its identity is the 32
 * lowercase hex characters of SHA-256("relay-uid-v1" || signature_key)[0..16].
 */
import { createHash } from 'node:crypto';
import type { AuthenticationService, Credential } from 'ts-mls';
import { USER_ID_LENGTH } from '../brand.js';
import { equalBytes, utf8 } from '../bytes.js';
import { ED25519_PUBLIC_LENGTH } from '../identity.js';
import { LABEL } from '../labels.js';

const USER_ID_LABEL = utf8(LABEL.userId);

/** PROTOCOL.md §2: user_id = SHA-256("relay-uid-v1" || ed25519_public_key)[0..16]. */
export function userIdFromKey(signaturePublicKey: Uint8Array): Uint8Array {
  const digest = createHash('sha256').update(USER_ID_LABEL).update(signaturePublicKey).digest();
  return new Uint8Array(digest.subarray(0, USER_ID_LENGTH));
}

/** The BasicCredential identity bytes for a user id: its 32 lowercase hex characters as ASCII. */
export function credentialIdentityOf(userId: Uint8Array): Uint8Array {
  return utf8(Buffer.from(userId).toString('hex'));
}

/** True when `identity` is exactly the credential identity that `signaturePublicKey` certifies. */
export function identityMatchesKey(identity: Uint8Array, signaturePublicKey: Uint8Array): boolean {
  if (signaturePublicKey.length !== ED25519_PUBLIC_LENGTH) return false;
  if (identity.length !== USER_ID_LENGTH * 2) return false;
  return equalBytes(identity, credentialIdentityOf(userIdFromKey(signaturePublicKey)));
}

export function credentialIsValid(credential: Credential, signaturePublicKey: Uint8Array): boolean {
  return credential.credentialType === 'basic' && identityMatchesKey(credential.identity, signaturePublicKey);
}

/** The authentication service every Relay MLS context uses; ts-mls calls it for every leaf it sees. */
export const relayAuthenticationService: AuthenticationService = {
  async validateCredential(credential, signaturePublicKey) {
    return credentialIsValid(credential, signaturePublicKey);
  },
};
