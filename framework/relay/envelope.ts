/**
 * Wire formats of what is sealed and published (PROTOCOL.md §5, §6, §9):
 * - SealedEnvelope, the only thing published to an inbox;
 * - InnerPayload, the HPKE plaintext inside it, padded to a multiple of 256 bytes;
 * - GroupPayload, what goes on a group topic.
 * Pure codecs: no cryptography here; shape rules only. Decoders throw CodecError, encoders throw
 * ArgumentError when handed a value they would refuse to decode.
 */
import { ACCESS_HINT_LENGTH, ACCESS_TAG_LENGTH } from './access.js';
import { type UnixSeconds, type UserId, GROUP_ID_LENGTH, USER_ID_LENGTH } from './brand.js';
import { bytesHeaderLength, decodeMap, decodeMapWithLayout, defineSchema, encodeMap } from './codec.js';
import { ArgumentError, CodecError } from './errors.js';
import { concatBytes } from './bytes.js';
import { DEFAULT_MAX_ENVELOPE_BYTES, MSG_TYPE, PADDING_BLOCK, PROTOCOL_VERSION } from './labels.js';

/** Largest MLSMessage an InnerPayload or GroupPayload may carry (key 3): 256 KiB. */
export const MAX_MLS_MESSAGE_BYTES = 256 * 1024;
/** Largest ratchet tree a Welcome may carry (InnerPayload key 4): 256 KiB. */
export const MAX_RATCHET_TREE_BYTES = 256 * 1024;
/** Minimal padding is under 260 bytes; more is tolerated (a sender may pad to larger buckets). */
export const MAX_PADDING_BYTES = 64 * 1024;
/**
 * Largest InnerPayload (the padded HPKE plaintext) the codec accepts: 640 KiB, room for an MLS message, a
 * tree and padding.
 */
export const MAX_INNER_PAYLOAD_BYTES = 640 * 1024;
/** AES-256-GCM tag (RFC 9180 §5.2 / RFC 5116). */
const AEAD_TAG_LENGTH = 16;
/** Hard ceiling of the codec; the configured MQTT payload limit (default 256 KiB) is checked before. */
export const MAX_ENVELOPE_BYTES = MAX_INNER_PAYLOAD_BYTES + AEAD_TAG_LENGTH + 128;
/** Length of the HPKE encapsulated key (envelope key 1): 32 bytes, an X25519 public key. */
export const HPKE_ENC_LENGTH = 32;
/** Our group Welcome extension key 11 (see InnerPayload.groupName). */
export const MAX_GROUP_NAME_BYTES = 128;
// The access field's parts are defined with the access-token computation (access.ts, PROTOCOL.md §5).
export { ACCESS_HINT_LENGTH, ACCESS_TAG_LENGTH };

// ---------------------------------------------------------------------------------------------------
// SealedEnvelope (§5)

/**
 * The decoded form of what is published to an inbox (PROTOCOL.md §5): an HPKE ciphertext plus the PoW nonce
 * or access token that admits it.
 */
export interface SealedEnvelope {
  /** HPKE encapsulated key, RFC 9180 §4.1 (X25519: 32 bytes). */
  enc: Uint8Array;
  ciphertext: Uint8Array;
  /** Always on the wire; 0 when an access token is used. */
  powNonce: bigint;
  access?: { hint: Uint8Array; tag: Uint8Array };
  sentAt: UnixSeconds;
}

/**
 * The CBOR field layout and limits of a SealedEnvelope (version 1), for tooling that inspects envelopes;
 * encodeEnvelope and decodeEnvelope use it.
 */
export const envelopeSchema = defineSchema('SealedEnvelope', MAX_ENVELOPE_BYTES, {
  version: { key: 0, type: 'uint', required: true, min: PROTOCOL_VERSION, max: PROTOCOL_VERSION },
  enc: { key: 1, type: 'bytes', required: true, length: HPKE_ENC_LENGTH },
  ciphertext: {
    key: 2,
    type: 'bytes',
    required: true,
    minLength: AEAD_TAG_LENGTH,
    maxLength: MAX_INNER_PAYLOAD_BYTES + AEAD_TAG_LENGTH,
  },
  powNonce: { key: 3, type: 'uint64', required: true },
  access: { key: 4, type: 'bytes', required: false, length: ACCESS_HINT_LENGTH + ACCESS_TAG_LENGTH },
  sentAt: { key: 6, type: 'uint', required: true },
});

/**
 * Deterministic CBOR of a SealedEnvelope; throws ArgumentError on an access hint that is not 4 bytes or a tag
 * that is not 16.
 */
export function encodeEnvelope(e: SealedEnvelope): Uint8Array {
  let access: Uint8Array | undefined;
  if (e.access !== undefined) {
    if (e.access.hint.length !== ACCESS_HINT_LENGTH || e.access.tag.length !== ACCESS_TAG_LENGTH) {
      throw new ArgumentError('access hint must be 4 bytes and tag 16 bytes');
    }
    access = concatBytes(e.access.hint, e.access.tag);
  }
  return encodeMap(envelopeSchema, {
    version: PROTOCOL_VERSION,
    enc: e.enc,
    ciphertext: e.ciphertext,
    powNonce: e.powNonce,
    access,
    sentAt: e.sentAt,
  });
}

/**
 * Strictly parses envelope bytes (PROTOCOL.md §1.1); throws CodecError on anything malformed, which a
 * receiver counts as a `codec` drop.
 */
export function decodeEnvelope(bytes: Uint8Array): SealedEnvelope {
  const v = decodeMap(envelopeSchema, bytes);
  const out: SealedEnvelope = {
    enc: v.enc,
    ciphertext: v.ciphertext,
    powNonce: v.powNonce,
    sentAt: v.sentAt as UnixSeconds,
  };
  if (v.access !== undefined) {
    out.access = { hint: v.access.slice(0, ACCESS_HINT_LENGTH), tag: v.access.slice(ACCESS_HINT_LENGTH) };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// InnerPayload (§6, §9)

/** msg_type of an InnerPayload: 3 Welcome, 5 MLS message, 6 group Welcome, 7 GROUP_REJOIN (see MSG_TYPE). */
export type InnerMsgType = 3 | 5 | 6 | 7;

/**
 * The HPKE plaintext inside a SealedEnvelope (PROTOCOL.md §6): who sent it, the MLS message, and per msg_type
 * the Welcome or rejoin extras.
 */
export interface InnerPayload {
  msgType: InnerMsgType;
  senderId: UserId;
  /** Sender's Ed25519 identity (credential) key. */
  senderIdentityKey: Uint8Array;
  /** MLSMessage bytes (Welcome, PrivateMessage, or for msg_type 7 a KeyPackage). */
  mls: Uint8Array;
  /** Welcome types only: body of RFC 9420's ratchet_tree extension. */
  ratchetTree?: Uint8Array;
  /** Key 5 and key 7 travel together. */
  sealedSenderKey?: Uint8Array;
  sealedSenderKeySignature?: Uint8Array;
  /** GROUP_REJOIN only (key 9). */
  groupId?: Uint8Array;
  /** GROUP_REJOIN only (key 10). */
  rejoinSignature?: Uint8Array;
  /** GROUP_REJOIN only (key 12): the member's current epoch, covered by key 10. */
  rejoinEpoch?: bigint;
  /**
   * Group Welcome only, our extension (key 11): the group's name as its creator set it. §1 has
   * decoders ignore unknown integer keys, so other clients simply do not see it.
   */
  groupName?: string;
}

/**
 * The CBOR field layout and limits of an InnerPayload; the shape rules between fields (which keys go with
 * which msg_type) are checked separately by the decoder.
 */
export const innerPayloadSchema = defineSchema('InnerPayload', MAX_INNER_PAYLOAD_BYTES, {
  msgType: { key: 0, type: 'uint', required: true },
  senderId: { key: 1, type: 'bytes', required: true, length: USER_ID_LENGTH },
  senderIdentityKey: { key: 2, type: 'bytes', required: true, length: 32 },
  mls: { key: 3, type: 'bytes', required: true, minLength: 1, maxLength: MAX_MLS_MESSAGE_BYTES },
  ratchetTree: { key: 4, type: 'bytes', required: false, minLength: 1, maxLength: MAX_RATCHET_TREE_BYTES },
  sealedSenderKey: { key: 5, type: 'bytes', required: false, length: 32 },
  sealedSenderKeySignature: { key: 7, type: 'bytes', required: false, length: 64 },
  padding: { key: 8, type: 'bytes', required: true, maxLength: MAX_PADDING_BYTES },
  groupId: { key: 9, type: 'bytes', required: false, length: GROUP_ID_LENGTH },
  rejoinSignature: { key: 10, type: 'bytes', required: false, length: 64 },
  groupName: { key: 11, type: 'text', required: false, maxBytes: MAX_GROUP_NAME_BYTES },
  rejoinEpoch: { key: 12, type: 'uint64', required: false },
});

const INNER_MSG_TYPES: readonly number[] = [
  MSG_TYPE.welcome,
  MSG_TYPE.message,
  MSG_TYPE.groupWelcome,
  MSG_TYPE.groupRejoin,
];

/** The cross-field rules of §6 and §9; returns what is wrong, or undefined. */
function innerShapeProblem(
  p: { msgType: number } & Pick<
    InnerPayload,
    | 'ratchetTree'
    | 'sealedSenderKey'
    | 'sealedSenderKeySignature'
    | 'groupId'
    | 'rejoinSignature'
    | 'rejoinEpoch'
    | 'groupName'
  >,
): string | undefined {
  if (!INNER_MSG_TYPES.includes(p.msgType)) return `unknown msg_type ${p.msgType}`;
  const isWelcome = p.msgType === MSG_TYPE.welcome || p.msgType === MSG_TYPE.groupWelcome;
  const isRejoin = p.msgType === MSG_TYPE.groupRejoin;
  if ((p.sealedSenderKey === undefined) !== (p.sealedSenderKeySignature === undefined)) {
    return 'sealed-sender key (5) and its signature (7) must come together';
  }
  if (isWelcome && p.sealedSenderKey === undefined) return 'a Welcome must carry keys 5 and 7';
  if (!isWelcome && p.ratchetTree !== undefined) return 'ratchet tree (4) only on a Welcome';
  if (isRejoin && (p.groupId === undefined || p.rejoinSignature === undefined)) {
    return 'GROUP_REJOIN needs group id (9) and signature (10)';
  }
  if (isRejoin && p.rejoinEpoch === undefined) return 'GROUP_REJOIN needs the epoch (12)';
  if (
    !isRejoin &&
    (p.groupId !== undefined || p.rejoinSignature !== undefined || p.rejoinEpoch !== undefined)
  ) {
    return 'keys 9, 10 and 12 only on GROUP_REJOIN';
  }
  if (p.groupName !== undefined && p.msgType !== MSG_TYPE.groupWelcome) {
    return 'key 11 (group name) only on a group Welcome';
  }
  return undefined;
}

/**
 * Encode with key 8 padding so the whole plaintext is a multiple of 256 bytes (§6). The padding's own
 * byte-string header grows at 24 and 256 bytes, so the smallest fitting length is searched, not computed.
 */
export function encodeInnerPayload(p: InnerPayload): Uint8Array {
  const problem = innerShapeProblem(p);
  if (problem !== undefined) throw new ArgumentError(`InnerPayload: ${problem}`);
  const fields = { ...p, padding: new Uint8Array(0) };
  const unpadded = encodeMap(innerPayloadSchema, fields).length;
  // With p padding bytes the length is unpadded - 1 (empty header) + header(p) + p.
  let pad = 0;
  while ((unpadded - 1 + bytesHeaderLength(pad) + pad) % PADDING_BLOCK !== 0) pad++;
  const out = encodeMap(innerPayloadSchema, { ...fields, padding: new Uint8Array(pad) });
  if (out.length % PADDING_BLOCK !== 0) throw new ArgumentError('InnerPayload: padding miscomputed');
  return out;
}

/**
 * Decode and check the plaintext: shape (§6, §9), padding present and all zero, total length a
 * multiple of 256. Larger-than-minimal padding is accepted. Binding the sender fields to the MLS
 * sender is the caller's later step.
 */
export function decodeInnerPayload(bytes: Uint8Array): InnerPayload {
  if (bytes.length % PADDING_BLOCK !== 0) {
    throw new CodecError(`InnerPayload: length ${bytes.length} is not a multiple of ${PADDING_BLOCK}`);
  }
  const v = decodeMap(innerPayloadSchema, bytes);
  for (const b of v.padding) if (b !== 0) throw new CodecError('InnerPayload: padding is not all zero');
  const { padding: _padding, ...rest } = v;
  const problem = innerShapeProblem(rest);
  if (problem !== undefined) throw new CodecError(`InnerPayload: ${problem}`);
  return { ...rest, msgType: rest.msgType as InnerMsgType, senderId: rest.senderId as UserId };
}

// ---------------------------------------------------------------------------------------------------
// GroupPayload (§9)

/**
 * The CBOR field layout of a GroupPayload, what goes on a group topic: msg_type 5 and the MLSMessage only, no
 * sender fields.
 */
export const groupPayloadSchema = defineSchema('GroupPayload', DEFAULT_MAX_ENVELOPE_BYTES, {
  msgType: { key: 0, type: 'uint', required: true, min: MSG_TYPE.message, max: MSG_TYPE.message },
  mls: { key: 3, type: 'bytes', required: true, minLength: 1, maxLength: MAX_MLS_MESSAGE_BYTES },
});

/** `{0: 5, 3: MLSMessage}`; the MLS PrivateMessage itself is checked by the MLS layer. */
export function encodeGroupPayload(mls: Uint8Array): Uint8Array {
  return encodeMap(groupPayloadSchema, { msgType: MSG_TYPE.message, mls });
}

/** Returns the MLSMessage bytes. Keys 1 or 2 (sender fields) are refused: they would leak the sender. */
export function decodeGroupPayload(bytes: Uint8Array): Uint8Array {
  const { value, layout } = decodeMapWithLayout(groupPayloadSchema, bytes);
  if (layout.entries.some((e) => e.key === 1 || e.key === 2)) {
    throw new CodecError('GroupPayload: sender fields (keys 1, 2) must not appear on a group topic');
  }
  return value.mls;
}
