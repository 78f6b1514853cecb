/**
 * A member's outstanding GROUP_REJOIN (PROTOCOL.md §9, version 2) and the rule it sets for group
 * Welcomes: for a group we are already in, a Welcome is accepted only as the answer to our own
 * request, so that nobody else can replace our state with a group of their own under the same id.
 * Pure functions over the request as stored in the group's bookkeeping.
 */
import { toHex } from './bytes.js';

/** §9: a member keeps its request this long; a rejoin is also asked at most once in this time. */
export const REJOIN_REQUEST_SECONDS = 600;

/** What we asked, as kept in GroupMeta (hex, so it survives the JSON round trip). */
export interface RejoinRequest {
  at: number;
  /** The committer's credential key as our own state showed it when we asked. */
  committerKey: string;
  /** The reference of the fresh KeyPackage we sent (key 3). */
  keyPackageRef: string;
}

export function newRejoinRequest(
  at: number,
  committerKey: Uint8Array,
  keyPackageRef: Uint8Array,
): RejoinRequest {
  return { at, committerKey: toHex(committerKey), keyPackageRef: toHex(keyPackageRef) };
}

/** Whether the request still stands at `now` (a clock stepping back does not extend it). */
export function rejoinRequestOpen(request: RejoinRequest | undefined, now: number): request is RejoinRequest {
  return request !== undefined && now >= request.at && now - request.at < REJOIN_REQUEST_SECONDS;
}

/** A verified group Welcome, as far as this rule looks at it. */
export interface WelcomeFacts {
  /** The GroupInfo signer's credential key. */
  signerKey: Uint8Array;
  /** Which of our KeyPackages it was built on. */
  consumedRef: Uint8Array;
}

/**
 * 'join' a group we are not in; 'rejoin' one we are in, as the answer to our open request (same
 * group, which the caller looked up by the Welcome's id; signed by the committer we asked; built on
 * the KeyPackage we sent); anything else for a group we are in is 'duplicate'.
 */
export function judgeGroupWelcome(
  existing: { rejoinRequest?: RejoinRequest } | undefined,
  welcome: WelcomeFacts,
  now: number,
): 'join' | 'rejoin' | 'duplicate' {
  if (existing === undefined) return 'join';
  const request = existing.rejoinRequest;
  if (!rejoinRequestOpen(request, now)) return 'duplicate';
  if (toHex(welcome.signerKey) !== request.committerKey) return 'duplicate';
  if (toHex(welcome.consumedRef) !== request.keyPackageRef) return 'duplicate';
  return 'rejoin';
}
