/**
 * GROUP_REJOIN (PROTOCOL.md §9): a member that fell behind asks the committer to remove its old
 * leaf and add a fresh KeyPackage. Key 10 binds the request to the group, that KeyPackage and the
 * envelope's sent_at, so a captured request cannot be replayed for another group, key or time.
 */
import { createHash } from 'node:crypto';
import { concatBytes, u64be, utf8 } from './bytes.js';
import { ed25519Sign, ed25519Verify, type Identity } from './identity.js';
import { LABEL } from './labels.js';

/** "relay-rejoin-v1" || group_id || SHA-256(key 3) || u64be(sent_at). */
export function rejoinSignatureMessage(
  groupId: Uint8Array,
  keyPackage: Uint8Array,
  sentAt: number,
): Uint8Array {
  const kpHash = new Uint8Array(createHash('sha256').update(keyPackage).digest());
  return concatBytes(utf8(LABEL.rejoin), groupId, kpHash, u64be(sentAt));
}

export function signRejoin(
  identity: Identity,
  groupId: Uint8Array,
  keyPackage: Uint8Array,
  sentAt: number,
): Uint8Array {
  return ed25519Sign(identity.signingSeed, rejoinSignatureMessage(groupId, keyPackage, sentAt));
}

/** Never throws: every argument came from the network. */
export function verifyRejoin(
  identityKey: Uint8Array,
  groupId: Uint8Array,
  keyPackage: Uint8Array,
  sentAt: number,
  signature: Uint8Array,
): boolean {
  return ed25519Verify(identityKey, rejoinSignatureMessage(groupId, keyPackage, sentAt), signature);
}
