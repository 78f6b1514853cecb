/**
 * GROUP_REJOIN (PROTOCOL.md §9, version 2): a member that fell behind asks the committer to remove
 * its old leaf and add a fresh KeyPackage. Key 10 binds the request to the group, the member's
 * epoch (key 12), that KeyPackage and the envelope's sent_at, so a captured request cannot be
 * replayed for another group, epoch, key or time, and the committer can tell whether the member is
 * really behind: the clear epoch that made it ask is not authenticated, its own signed one is.
 */
import { createHash } from 'node:crypto';
import { concatBytes, u64be, utf8 } from './bytes.js';
import { ed25519Sign, ed25519Verify, type Identity } from './identity.js';
import { LABEL } from './labels.js';

/** What key 10 signs: the group, the member's epoch, its fresh KeyPackage and the time. */
export interface RejoinClaim {
  groupId: Uint8Array;
  epoch: bigint;
  keyPackage: Uint8Array;
  sentAt: number;
}

/** "relay-rejoin-v2" || group_id || u64be(epoch) || SHA-256(key 3) || u64be(sent_at). */
export function rejoinSignatureMessage(claim: RejoinClaim): Uint8Array {
  const kpHash = new Uint8Array(createHash('sha256').update(claim.keyPackage).digest());
  return concatBytes(utf8(LABEL.rejoin), claim.groupId, u64be(claim.epoch), kpHash, u64be(claim.sentAt));
}

/** The Ed25519 signature a member puts in GROUP_REJOIN key 10, over rejoinSignatureMessage(claim). */
export function signRejoin(identity: Identity, claim: RejoinClaim): Uint8Array {
  return ed25519Sign(identity.signingSeed, rejoinSignatureMessage(claim));
}

/** Never throws: every argument came from the network. */
export function verifyRejoin(identityKey: Uint8Array, claim: RejoinClaim, signature: Uint8Array): boolean {
  if (claim.epoch < 0n || claim.epoch > 0xffff_ffff_ffff_ffffn) return false;
  return ed25519Verify(identityKey, rejoinSignatureMessage(claim), signature);
}

/** §9: the committer re-adds a member only if the epoch it signed is below the group's. */
export function memberIsBehind(memberEpoch: bigint, groupEpoch: bigint): boolean {
  return memberEpoch < groupEpoch;
}
