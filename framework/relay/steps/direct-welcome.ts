/**
 * Pure checks of a 1:1 Welcome once it joined (PROTOCOL.md §6, §7): who is in the group, and which
 * of two sessions started at once survives.
 */
import { fromHex, toHex } from '../bytes.js';
import type { DropReason } from '../drops.js';
import type { InnerPayload } from '../envelope.js';
import type * as mls from '../mls/index.js';

/** A 1:1 Welcome: exactly us and the sender, and the GroupInfo signed by the sender's key. */
export function directWelcomeMembers(
  joined: Pick<mls.JoinedSession, 'members' | 'groupInfoSignerKey'>,
  inner: Pick<InnerPayload, 'senderIdentityKey'>,
  ownSigningKey: Uint8Array,
): DropReason | undefined {
  if (joined.members.length !== 2) return 'welcome_invalid';
  const keys = joined.members.map((m) => toHex(m.identityKey));
  const senderKey = toHex(inner.senderIdentityKey);
  if (toHex(joined.groupInfoSignerKey) !== senderKey) return 'sender_binding';
  if (!keys.includes(senderKey) || !keys.includes(toHex(ownSigningKey))) return 'welcome_invalid';
  return undefined;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/**
 * Both sides initiated at once: both keep the group with the smaller id (PROTOCOL.md §7), so a
 * Welcome for a larger id than our own unconfirmed session's is superseded.
 */
export function welcomeSuperseded(
  existing: { groupId: string; initiatedUnconfirmed: boolean } | undefined,
  joinedGroupId: Uint8Array,
): boolean {
  return !!existing?.initiatedUnconfirmed && compareBytes(fromHex(existing.groupId), joinedGroupId) < 0;
}
