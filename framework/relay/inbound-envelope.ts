/**
 * The envelope half of the receive pipeline (PROTOCOL.md §5), cheapest check first:
 * size → CBOR shape → sent_at window → replay cache → access tag or PoW → HPKE open → InnerPayload.
 * It changes no state; the caller records the envelope digest only once everything verified.
 */
import { createHash } from 'node:crypto';
import { verifyAccessTag, type AccessIndex } from './access.js';
import type { UnixSeconds, UserId } from './brand.js';
import { toHex } from './bytes.js';
import type { DropReason } from './drops.js';
import { decodeEnvelope, decodeInnerPayload, type InnerPayload, type SealedEnvelope } from './envelope.js';
import { SENT_AT_WINDOW_SECONDS } from './labels.js';
import { powChallenge, verifyPow } from './pow.js';
import type { Opener } from './seal.js';

export interface EnvelopeCheckDeps {
  selfId: UserId;
  powBits: number;
  maxEnvelopeBytes: number;
  opener: Opener;
  accessIndex: AccessIndex;
  hasEnvelope(digest: string, now: UnixSeconds): Promise<boolean>;
}

export interface OpenedEnvelope {
  envelope: SealedEnvelope;
  inner: InnerPayload;
  /** Hex SHA-256 of the MQTT payload: the replay-cache key. */
  digest: string;
  /** The session whose access tag verified; the envelope must then belong to it. */
  tokenSession?: string;
}

export type EnvelopeCheck =
  | { ok: true; value: OpenedEnvelope }
  | { ok: false; reason: DropReason; error?: unknown; retryAfterEarlier?: boolean };

const drop = (reason: DropReason, error?: unknown): EnvelopeCheck => ({ ok: false, reason, error });

function tokenSessionFor(deps: EnvelopeCheckDeps, env: SealedEnvelope, now: UnixSeconds): string | undefined {
  if (!env.access) return undefined;
  for (const c of deps.accessIndex.lookup(env.access.hint, env.sentAt, now)) {
    if (verifyAccessTag(c.key, env.enc, env.ciphertext, env.sentAt, env.access.tag)) return c.sessionId;
  }
  return undefined;
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
  const digest = digestHex(payload);
  if (await deps.hasEnvelope(digest, now)) return drop('replay');
  const tokenSession = tokenSessionFor(deps, env, now);
  if (tokenSession === undefined) {
    const challenge = powChallenge(deps.selfId, env.sentAt, env.enc, env.ciphertext);
    if (!verifyPow(challenge, env.powNonce, deps.powBits)) {
      // An unknown hint may name a session or epoch that an earlier message is still setting up.
      return env.access ? { ok: false, reason: 'pow', retryAfterEarlier: true } : drop('pow');
    }
  }
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
    return drop('hpke', e);
  }
  let inner: InnerPayload;
  try {
    inner = decodeInnerPayload(plaintext);
  } catch (e) {
    return drop('inner_payload', e);
  }
  return { ok: true, value: { envelope: env, inner, digest, ...(tokenSession ? { tokenSession } : {}) } };
}

/** The replay-cache entry: kept until the envelope's sent_at leaves the acceptance window, plus a minute. */
export function replayEntry(opened: OpenedEnvelope): { digest: string; expiresAt: UnixSeconds } {
  return {
    digest: opened.digest,
    expiresAt: (opened.envelope.sentAt + SENT_AT_WINDOW_SECONDS + 60) as UnixSeconds,
  };
}

export function digestHex(bytes: Uint8Array): string {
  return toHex(createHash('sha256').update(bytes).digest());
}
