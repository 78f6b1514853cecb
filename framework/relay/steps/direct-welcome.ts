/**
 * A 1:1 Welcome once it joined (PROTOCOL.md §6, §7): who is in the group, which of two sessions
 * started at once survives, and what to commit, emit and do afterwards.
 */
import { groupIdHexOf, type UnixSeconds, type UserIdHex } from '../brand.js';
import { fromHex, toHex } from '../bytes.js';
import type { DropReason } from '../drops.js';
import type { InnerPayload } from '../envelope.js';
import { replayEntry, type OpenedEnvelope } from '../inbound-envelope.js';
import * as mls from '../mls/index.js';
import { welcomeSenderPeer } from '../welcome-admission.js';
import type { InboundCommit, PeerRecord, SessionRecord } from '../store.js';
import type { StepContext } from './context.js';
import { newDirectSession } from './direct-session.js';

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

/** A 1:1 session was set up, by us ('initiator') or by the peer's Welcome ('joiner'). */
export interface SessionEvent {
  peer: UserIdHex;
  groupId: string;
  role: 'initiator' | 'joiner';
}

/** Work after the commit: a fresh bundle (the KeyPackage is spent), texts a lost race left unsent. */
export type DirectWelcomeFollowUp =
  { kind: 'republish' } | { kind: 'resend'; peer: UserIdHex; texts: string[] };

export interface DirectWelcomeLoaded {
  /** Our current session with the sender, if any. */
  existing: SessionRecord | undefined;
  /** What we knew of the sender before (its PoW bits, bundle, name). */
  known: PeerRecord | undefined;
}

export interface DirectWelcomeInput {
  joined: mls.JoinedSession;
  opened: OpenedEnvelope;
  sender: UserIdHex;
  /** Welcome digest (welcome_replay) and the sender's sealed-sender key, from the admission. */
  digest: string;
  sealKey: Uint8Array;
  now: UnixSeconds;
}

export interface DirectWelcomeStep {
  drop?: DropReason;
  commit: InboundCommit;
  /** The state the commit writes, for the cache. */
  decoded?: { groupId: string; state: mls.GroupSession };
  /** The session to index for access tokens; `replaces` leaves the index. */
  session?: SessionRecord;
  replaces?: string;
  events: SessionEvent[];
  followUps: DirectWelcomeFollowUp[];
}

/**
 * A Welcome that passed admission and the member checks, over our current session with the sender:
 * either superseded by our own simultaneous initiation (only the replay marks and the spent
 * KeyPackage are committed) or a new session replacing any old one.
 */
export async function directWelcome(
  ctx: StepContext,
  loaded: DirectWelcomeLoaded,
  input: DirectWelcomeInput,
): Promise<DirectWelcomeStep> {
  const { joined, opened, sender, now } = input;
  const marks: InboundCommit = {
    envelope: replayEntry(opened),
    welcome: { digest: input.digest, at: now },
    consumedKeyPackage: { ref: toHex(joined.consumedRef), at: now },
  };
  const groupIdBytes = mls.groupIdOf(joined.state);
  const { existing } = loaded;
  if (welcomeSuperseded(existing, groupIdBytes)) {
    // Our KeyPackage is spent either way: the peer saw it used, so mint a fresh one.
    return { drop: 'welcome_superseded', commit: marks, events: [], followUps: [{ kind: 'republish' }] };
  }
  const groupId = groupIdHexOf(groupIdBytes);
  const session = await newDirectSession(ctx, joined.state, groupId, sender, false, now);
  const peer = welcomeSenderPeer(loaded.known, sender, opened.inner.senderIdentityKey, input.sealKey);
  const followUps: DirectWelcomeFollowUp[] = [{ kind: 'republish' }];
  if (existing?.initiatedUnconfirmed && existing.unconfirmedOutgoing.length > 0) {
    followUps.push({ kind: 'resend', peer: sender, texts: existing.unconfirmedOutgoing });
  }
  return {
    commit: {
      conversations: [session],
      ...(existing ? { deleteConversations: [existing.groupId] } : {}),
      peers: [peer],
      ...marks,
    },
    decoded: { groupId, state: joined.state },
    session,
    ...(existing ? { replaces: existing.groupId } : {}),
    events: [{ peer: sender, groupId, role: 'joiner' }],
    followUps,
  };
}
