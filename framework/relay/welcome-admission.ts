/**
 * The one Welcome preamble for both conversation kinds (PROTOCOL.md §7, §9): a Welcome comes with
 * proof of work (never an access token) and a sealed-sender key, is not one seen in the last week,
 * fits the sender's Welcome quota, and joins with one of our KeyPackages within the kind's bounds.
 * What the joined group must then look like is the kind's own step (steps/direct-welcome.ts,
 * steps/group-welcome.ts).
 */
import type { Logger } from 'pino';
import type { UnixSeconds, UserIdHex } from './brand.js';
import { fromHex } from './bytes.js';
import type { DropReason } from './drops.js';
import { digestHex, type OpenedEnvelope } from './inbound-envelope.js';
import * as mls from './mls/index.js';
import { DEFAULT_POW_BITS } from './labels.js';
import type { PeerRecord, RelayStore } from './store.js';
import type { WelcomeQuota } from './welcome-quota.js';

/** A Welcome digest is remembered this long (welcome_replay). */
const WELCOME_REPLAY_SECONDS = 7 * 86_400;

export interface WelcomeAdmissionDeps {
  store: RelayStore;
  mls: mls.MlsContext;
  quota: WelcomeQuota;
  log: Logger;
}

export interface WelcomeRules {
  /** A refusal of this sender decided before any work (a group invitation policy). */
  refuseSender?: DropReason;
  /** Member and tree bounds; a 1:1 Welcome keeps the engine's default of exactly two members. */
  limits?: mls.JoinOptions;
  /** The drop reason when the bounds are exceeded. */
  tooLarge: DropReason;
  /** Debug log line for a Welcome the engine rejects. */
  rejected: string;
}

export type WelcomeAdmission =
  | { ok: true; joined: mls.JoinedSession; digest: string; sealKey: Uint8Array }
  | { ok: false; reason: DropReason };

export async function admitWelcome(
  deps: WelcomeAdmissionDeps,
  opened: OpenedEnvelope,
  sender: UserIdHex,
  now: UnixSeconds,
  rules: WelcomeRules,
): Promise<WelcomeAdmission> {
  const { inner } = opened;
  const refuse = (reason: DropReason): WelcomeAdmission => ({ ok: false, reason });
  // A Welcome always carries PoW: a token only vouches for messages inside its own session.
  if (opened.tokenSession !== undefined) return refuse('access_session');
  const sealKey = inner.sealedSenderKey;
  if (!sealKey) return refuse('inner_payload');
  if (rules.refuseSender) return refuse(rules.refuseSender);
  const digest = digestHex(inner.mls);
  if (await deps.store.hasWelcome(digest, (now - WELCOME_REPLAY_SECONDS) as UnixSeconds))
    return refuse('welcome_replay');
  if (!deps.quota.take(sender)) return refuse('welcome_quota');
  try {
    const joined = await mls.joinFromWelcome(
      deps.mls,
      inner.mls,
      inner.ratchetTree,
      // Read once: a Welcome names a KeyPackage per invitee, up to the group's size.
      (await deps.store.listKeyPackages()).map((k) => ({
        ref: fromHex(k.ref),
        keyPackage: k.keyPackage,
        privateKeyPackage: k.privateKeyPackage,
      })),
      ...(rules.limits !== undefined ? [rules.limits] : []),
    );
    return { ok: true, joined, digest, sealKey };
  } catch (e) {
    deps.log.debug({ err: (e as Error).message }, rules.rejected);
    return refuse(e instanceof mls.GroupLimitError ? rules.tooLarge : 'welcome_invalid');
  }
}

/**
 * The sender as a peer once its Welcome is accepted: what we knew of it (PoW bits, bundle, name)
 * with the identity key it signed with and the sealed-sender key it sent.
 */
export function welcomeSenderPeer(
  known: PeerRecord | undefined,
  sender: UserIdHex,
  senderIdentityKey: Uint8Array,
  sealKey: Uint8Array,
): PeerRecord {
  return {
    ...(known ?? { powBits: DEFAULT_POW_BITS }),
    userId: sender,
    identityKey: senderIdentityKey,
    sealKey,
  };
}
