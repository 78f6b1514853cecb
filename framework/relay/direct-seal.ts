/**
 * Sealing of inbox envelopes (PROTOCOL.md §5, §6): inside an established session with an access
 * token derived from the MLS state, or on first contact with a mined proof of work; and the outbox
 * row that carries one to a peer's inbox.
 */
import { performance } from 'node:perf_hooks';
import { accessHint, accessTag } from './access.js';
import type { UnixSeconds } from './brand.js';
import type { Clock } from './clock.js';
import { encodeEnvelope, encodeInnerPayload, type InnerPayload } from './envelope.js';
import { userIdFromHex, type Identity } from './identity.js';
import { LABEL, SENT_AT_WINDOW_SECONDS } from './labels.js';
import * as mls from './mls/index.js';
import { powChallenge, type PowMiner } from './pow.js';
import type { Random } from './random.js';
import { seal, type SealKeyCache } from './seal.js';
import type { OutboxRecord, PeerRecord } from './store.js';
import { inboxTopic } from './topics.js';

const INBOX_MESSAGE_EXPIRY_SECONDS = SENT_AT_WINDOW_SECONDS;

export interface SealContext {
  identity: Identity;
  mls: mls.MlsContext;
  clock: Clock;
  prefix: string;
  /** Ids of the outbox rows. */
  random: Random;
  miner: PowMiner;
  /** Access keys for sealing in a session, derived once per conversation and epoch. */
  accessKeys: mls.ExporterCache;
  /** Peers' parsed seal keys (seal.ts); without it each envelope parses its recipient's key. */
  sealKeys?: SealKeyCache;
  /** First contact mined a proof of work (for metrics). */
  onPow(bits: number, seconds: number): void;
}

/** Seal a message inside an established session: access token instead of PoW. */
export async function sealInSession(
  ctx: SealContext,
  framedIn: mls.GroupSession,
  peer: PeerRecord,
  inner: Pick<InnerPayload, 'msgType' | 'mls'>,
): Promise<Uint8Array> {
  const peerId = userIdFromHex(peer.userId);
  const key = await ctx.accessKeys.export(ctx.mls, framedIn, LABEL.access, peerId, 32);
  const sentAt = ctx.clock.now();
  const hint = accessHint(key, sentAt);
  const plaintext = encodeInnerPayload({
    ...inner,
    senderId: ctx.identity.userId,
    senderIdentityKey: ctx.identity.signingPublic,
  });
  const sealed = await seal({
    recipientId: peerId,
    recipientSealKey: peer.sealKey,
    plaintext,
    sentAt,
    hint,
    ...(ctx.sealKeys ? { keys: ctx.sealKeys } : {}),
  });
  const tag = accessTag(key, sealed.enc, sealed.ciphertext, sentAt);
  return encodeEnvelope({ ...sealed, powNonce: 0n, access: { hint, tag }, sentAt });
}

/** Seal with a proof of work at the peer's demanded bits (first contact, group invitations). */
export async function sealWithPow(
  ctx: SealContext,
  peer: PeerRecord,
  inner: Omit<InnerPayload, 'senderId' | 'senderIdentityKey'>,
  sentAt: UnixSeconds = ctx.clock.now(),
): Promise<Uint8Array> {
  const peerId = userIdFromHex(peer.userId);
  const plaintext = encodeInnerPayload({
    ...inner,
    senderId: ctx.identity.userId,
    senderIdentityKey: ctx.identity.signingPublic,
  } as InnerPayload);
  const sealed = await seal({
    recipientId: peerId,
    recipientSealKey: peer.sealKey,
    plaintext,
    sentAt,
    ...(ctx.sealKeys ? { keys: ctx.sealKeys } : {}),
  });
  const started = performance.now();
  const nonce = await ctx.miner.mine(
    powChallenge(peerId, sentAt, sealed.enc, sealed.ciphertext),
    peer.powBits,
  );
  ctx.onPow(peer.powBits, (performance.now() - started) / 1000);
  return encodeEnvelope({ ...sealed, powNonce: nonce, sentAt });
}

/** The outbox row that carries a sealed envelope to a peer's inbox. */
export function inboxRow(
  ctx: Pick<SealContext, 'clock' | 'prefix' | 'random'>,
  peerHex: string,
  payload: Uint8Array,
): OutboxRecord {
  return {
    id: ctx.random.uuid(),
    topic: inboxTopic(ctx.prefix, userIdFromHex(peerHex)),
    payload,
    messageExpirySeconds: INBOX_MESSAGE_EXPIRY_SECONDS,
    createdAt: ctx.clock.now(),
  };
}
