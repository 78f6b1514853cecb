/**
 * Who sent a PrivateMessage, before processing it.
 *
 * ts-mls 1.6.4 does not report the sender of an application message. RFC 9420 §6.3.2 encrypts the
 * sender's leaf index (SenderData) under a key derived from the epoch's sender_data_secret and a
 * sample of the ciphertext; decrypting only that is cheap and changes no ratchet state, so the
 * receive pipeline can bind the sealed-sender claim to the MLS sender before anything is kept.
 */
import { decodeMlsMessage } from 'ts-mls';
import type { PrivateMessage } from 'ts-mls';
import { decryptSenderData } from 'ts-mls/privateMessage.js';
import { equalBytes } from '../bytes.js';
import { CodecError, ProtocolError, VerificationError } from '../errors.js';
import { userIdFromKey } from './auth.js';
import type { MlsContext } from './context.js';
import { SenderDataMemo } from './sender-data-memo.js';
import { unwrap, type GroupSession } from './state.js';

export type MlsContentType = 'application' | 'proposal' | 'commit';

export interface PeekedSender {
  readonly groupId: Uint8Array;
  readonly epoch: bigint;
  readonly leafIndex: number;
  /** The sender leaf's Ed25519 credential key, from the tree of the message's epoch. */
  readonly identityKey: Uint8Array;
  readonly userId: Uint8Array;
  readonly contentType: MlsContentType;
}

/** Parses MLSMessage bytes that must carry a PrivateMessage; no keys needed. */
export function decodePrivateMessage(bytes: Uint8Array): PrivateMessage {
  return parseFramed(bytes);
}

function parseFramed(bytes: Uint8Array): PrivateMessage {
  let decoded;
  try {
    decoded = decodeMlsMessage(bytes, 0);
  } catch (e) {
    throw new CodecError('MLS message does not decode', { cause: e });
  }
  if (decoded === undefined || decoded[1] !== bytes.length) {
    throw new CodecError('MLS message does not decode');
  }
  const [msg] = decoded;
  if (msg.version !== 'mls10') throw new CodecError('unsupported MLS version');
  // PROTOCOL.md §9: only PrivateMessages travel; a PublicMessage would expose the sender.
  if (msg.wireformat !== 'mls_private_message') {
    throw new ProtocolError(`expected a PrivateMessage, got ${msg.wireformat}`);
  }
  return msg.privateMessage;
}

export interface MessageHeader {
  readonly groupId: Uint8Array;
  readonly epoch: bigint;
  readonly contentType: MlsContentType;
}

/**
 * Make and read DecodedMessages: set once by the class below, so that the parsed (ts-mls) form is
 * reachable from mls/ only and never part of the class's public shape.
 */
let decoded: (bytes: Uint8Array, pm: PrivateMessage) => DecodedMessage;
let parsedOf: (m: DecodedMessage) => { pm: PrivateMessage; memo: SenderDataMemo };

/**
 * A PrivateMessage parsed once where it arrives (decodeMessage) and handed down to processing, so
 * that neither the routing (group id, content type) nor the engine parses the bytes again. The
 * header fields are the clear PrivateMessage header (RFC 9420 §6.3): unauthenticated until the
 * message decrypts. The parsed form stays inside mls/ (no ts-mls type leaves it), and so does the
 * SenderData decrypted while peeking at the sender, which processing then reuses.
 */
export class DecodedMessage implements MessageHeader {
  readonly #pm: PrivateMessage;
  readonly #memo = new SenderDataMemo();

  static {
    decoded = (bytes, pm) => new DecodedMessage(bytes, pm);
    parsedOf = (m) => ({ pm: m.#pm, memo: m.#memo });
  }

  /** Use decodeMessage. */
  private constructor(
    /** The MLSMessage bytes as received. */
    readonly bytes: Uint8Array,
    pm: PrivateMessage,
  ) {
    this.#pm = pm;
  }

  /** The group id the message claims. */
  get groupId(): Uint8Array {
    return this.#pm.groupId;
  }

  /** The epoch it was framed in. */
  get epoch(): bigint {
    return this.#pm.epoch;
  }

  /** Application, proposal or commit. */
  get contentType(): MlsContentType {
    return this.#pm.contentType;
  }
}

/**
 * Parses MLSMessage bytes that must carry a PrivateMessage (no keys needed): CodecError when they
 * do not decode, ProtocolError for another wire format.
 */
export function decodeMessage(bytes: Uint8Array): DecodedMessage {
  return decoded(bytes, parseFramed(bytes));
}

/** Bytes or an already decoded message: the parsed message and its SenderData memo. */
export function parsedMessage(message: Uint8Array | DecodedMessage): {
  pm: PrivateMessage;
  memo: SenderDataMemo;
} {
  return parsedOf(message instanceof DecodedMessage ? message : decodeMessage(message));
}

/**
 * The clear PrivateMessage header (RFC 9420 §6.3), no keys needed and unauthenticated until the
 * message decrypts: enough to route a group payload and to tell a fallen-behind member (§9).
 */
export function peekHeader(message: Uint8Array): MessageHeader {
  const pm = decodePrivateMessage(message);
  return { groupId: pm.groupId, epoch: pm.epoch, contentType: pm.contentType };
}

/** The group id a PrivateMessage claims (unauthenticated until it decrypts). */
export function groupIdOfMessage(bytes: Uint8Array): Uint8Array {
  return decodePrivateMessage(bytes).groupId;
}

export async function peekSender(
  ctx: MlsContext,
  session: GroupSession,
  message: Uint8Array | DecodedMessage,
): Promise<PeekedSender> {
  const { pm, memo } = parsedMessage(message);
  return peekPrivateMessage(ctx, session, pm, memo);
}

/**
 * The sender of `pm` from its SenderData, decrypted under the epoch's sender_data_secret. With a
 * memo, the decryption is recorded so that processing the message can reuse it.
 */
export async function peekPrivateMessage(
  ctx: MlsContext,
  session: GroupSession,
  pm: PrivateMessage,
  memo?: SenderDataMemo,
): Promise<PeekedSender> {
  const group = unwrap(session).group;
  if (!equalBytes(pm.groupId, group.groupContext.groupId)) {
    throw new ProtocolError('message belongs to another group');
  }
  const current = group.groupContext.epoch;
  if (pm.epoch > current) throw new ProtocolError('message is from a future epoch');
  const epochData =
    pm.epoch === current
      ? { senderDataSecret: group.keySchedule.senderDataSecret, ratchetTree: group.ratchetTree }
      : group.historicalReceiverData.get(pm.epoch);
  if (epochData === undefined) throw new ProtocolError('message is from an epoch no longer kept');

  let senderData;
  try {
    const cs = memo ? memo.recording(ctx.cipherSuite) : ctx.cipherSuite;
    senderData = await decryptSenderData(pm, epochData.senderDataSecret, cs);
  } catch (e) {
    throw new VerificationError('sender data does not decrypt', { cause: e });
  }
  if (senderData === undefined) throw new VerificationError('sender data does not decode');
  const node = epochData.ratchetTree[senderData.leafIndex * 2];
  if (node?.nodeType !== 'leaf') throw new ProtocolError('sender leaf is blank');
  const identityKey = node.leaf.signaturePublicKey;
  return {
    groupId: pm.groupId,
    epoch: pm.epoch,
    leafIndex: senderData.leafIndex,
    identityKey,
    userId: userIdFromKey(identityKey),
    contentType: pm.contentType,
  };
}
