/**
 * The envelope half of the receive pipeline (PROTOCOL.md §5), cheapest check first:
 * size → CBOR shape → sent_at window → replay cache in memory → access tag or PoW → HPKE open →
 * InnerPayload → replay cache in the store. An envelope that cost its sender nothing (no valid PoW,
 * no valid tag) is refused before any store read. The store's replay check of a 1:1 message
 * (msg_type 2 whose MLS message decodes) is left to the read of its conversation, which checks it
 * in the same round trip (issue 12: one read per message, not two); every other kind is checked
 * here. An HPKE open costs less than the round trip it saves, so opening first costs nothing even
 * for a replay. It changes no stored state: the caller commits the replay entry with the message,
 * and settles the in-memory claim once the message reached an outcome.
 */
import { createHash } from 'node:crypto';
import { verifyAccessTag, type AccessIndex } from './access.js';
import type { UnixSeconds, UserId } from './brand.js';
import { toHex } from './bytes.js';
import type { DropReason } from './drops.js';
import { decodeEnvelope, decodeInnerPayload, type InnerPayload, type SealedEnvelope } from './envelope.js';
import { MSG_TYPE, SENT_AT_WINDOW_SECONDS } from './labels.js';
import * as mls from './mls/index.js';
import { powChallengeForDigest, verifyPow } from './pow.js';
import { replayDigest, type ReplayCache, type ReplayClaim } from './replay-cache.js';
import type { Opener } from './seal.js';

export interface EnvelopeCheckDeps {
  selfId: UserId;
  powBits: number;
  maxEnvelopeBytes: number;
  opener: Opener;
  accessIndex: AccessIndex;
  replayCache: ReplayCache;
  hasEnvelope(digest: string, now: UnixSeconds): Promise<boolean>;
}

export interface OpenedEnvelope {
  envelope: SealedEnvelope;
  inner: InnerPayload;
  /** Hex SHA-256(enc || ciphertext): the replay-cache key. */
  digest: string;
  /** The session whose access tag verified; the envelope must then belong to it. */
  tokenSession?: string;
  /** Held in memory until the message's outcome is known; settle it exactly then. */
  claim: ReplayClaim;
  /**
   * msg_type 2: the inner MLS message, decoded once here for everything after (the key-change
   * ordering, the session lookup, the engine). Absent when it does not decode: the 1:1 shell then
   * drops it as 'mls'.
   */
  message?: mls.DecodedMessage;
  /**
   * The store's replay cache was not read: the conversation read must check `digest` (as
   * hasEnvelope(digest, now)) and drop the message as 'replay' when it is there. Set exactly when
   * `message` is.
   */
  replayCheckDeferred?: true;
}

export type EnvelopeCheck =
  | { ok: true; value: OpenedEnvelope }
  | { ok: false; reason: DropReason; error?: unknown; retryAfterEarlier?: boolean; hint?: string };

const drop = (reason: DropReason, error?: unknown): EnvelopeCheck => ({ ok: false, reason, error });

function tokenSessionFor(deps: EnvelopeCheckDeps, env: SealedEnvelope, now: UnixSeconds): string | undefined {
  if (!env.access) return undefined;
  for (const c of deps.accessIndex.lookup(env.access.hint, env.sentAt, now)) {
    if (verifyAccessTag(c.key, env.enc, env.ciphertext, env.sentAt, env.access.tag)) return c.sessionId;
  }
  return undefined;
}

/** Waits out a copy in flight; 'seen' once any copy reached an outcome. */
async function seenInMemory(cache: ReplayCache, key: string, now: UnixSeconds): Promise<boolean> {
  for (;;) {
    const found = cache.lookup(key, now);
    if (found === 'seen') return true;
    if (found === 'unseen') return false;
    await found.inFlight;
  }
}

export async function checkEnvelope(
  deps: EnvelopeCheckDeps,
  payload: Uint8Array,
  now: UnixSeconds,
): Promise<EnvelopeCheck> {
  if (payload.length > deps.maxEnvelopeBytes) return drop('oversize');
  let env: SealedEnvelope;
  try {
    env = decodeEnvelope(payload);
  } catch (e) {
    return drop('codec', e);
  }
  if (Math.abs(env.sentAt - now) > SENT_AT_WINDOW_SECONDS) return drop('sent_at');
  const digestBytes = replayDigest(env.enc, env.ciphertext);
  const digest = toHex(digestBytes);
  if (await seenInMemory(deps.replayCache, digest, now)) return drop('replay');
  // No await from the memory lookup to the claim below: a concurrent copy sees the claim.
  const tokenSession = tokenSessionFor(deps, env, now);
  if (tokenSession === undefined) {
    const challenge = powChallengeForDigest(deps.selfId, env.sentAt, digestBytes);
    if (!verifyPow(challenge, env.powNonce, deps.powBits)) {
      // An unknown hint may name a session or epoch that an earlier message is still setting up.
      return env.access
        ? { ok: false, reason: 'pow', retryAfterEarlier: true, hint: toHex(env.access.hint) }
        : drop('pow');
    }
  }
  // From here on the envelope used up its PoW or tag: whatever follows decides, it was one attempt.
  const claim = deps.replayCache.claim(digest, replayExpiry(env));
  const dropClaimed = (reason: DropReason, error?: unknown): EnvelopeCheck => {
    claim.settle(true);
    return drop(reason, error);
  };
  let plaintext: Uint8Array;
  try {
    plaintext = await deps.opener.open({
      recipientId: deps.selfId,
      enc: env.enc,
      ciphertext: env.ciphertext,
      sentAt: env.sentAt,
      ...(env.access ? { hint: env.access.hint } : {}),
    });
  } catch (e) {
    return dropClaimed('hpke', e);
  }
  let inner: InnerPayload;
  try {
    inner = decodeInnerPayload(plaintext);
  } catch (e) {
    return dropClaimed('inner_payload', e);
  }
  const message = inner.msgType === MSG_TYPE.message ? decodedOrUndefined(inner.mls) : undefined;
  if (!message) {
    try {
      if (await deps.hasEnvelope(digest, now)) return dropClaimed('replay');
    } catch (e) {
      claim.settle(false);
      throw e;
    }
  }
  return {
    ok: true,
    value: {
      envelope: env,
      inner,
      digest,
      claim,
      ...(tokenSession ? { tokenSession } : {}),
      ...(message ? { message, replayCheckDeferred: true as const } : {}),
    },
  };
}

function decodedOrUndefined(bytes: Uint8Array): mls.DecodedMessage | undefined {
  try {
    return mls.decodeMessage(bytes);
  } catch {
    return undefined;
  }
}

/** Kept until the envelope's sent_at leaves the acceptance window, plus a minute. */
function replayExpiry(env: SealedEnvelope): UnixSeconds {
  return (env.sentAt + SENT_AT_WINDOW_SECONDS + 60) as UnixSeconds;
}

/** The replay-cache entry: kept until the envelope's sent_at leaves the acceptance window, plus a minute. */
export function replayEntry(opened: OpenedEnvelope): { digest: string; expiresAt: UnixSeconds } {
  return { digest: opened.digest, expiresAt: replayExpiry(opened.envelope) };
}

export function digestHex(bytes: Uint8Array): string {
  return toHex(createHash('sha256').update(bytes).digest());
}
