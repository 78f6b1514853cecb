/**
 * A group's MLS state stored in two parts (issue #12), so that a member that sends or receives an
 * application message writes only what the message changed:
 *
 * - the **epoch part**: everything that changes only when the epoch changes: group context, key
 *   schedule, ratchet tree, our private path and signature key, confirmation tag, and for each
 *   retained past epoch its tree, context and sender-data secret. Large (a 100-member group's is
 *   about 100 KB) and encoded by ts-mls, which costs ~0.1 ms per KB: written once per epoch.
 * - the **live part**: the secret trees (the current epoch's and the retained past epochs'), the
 *   proposals waiting for a commit, and our own extras (previous exporter, pending Update). The
 *   secret trees move with every message (RFC 9420 §9.1 ratchets), so this part is written every
 *   time, with our own flat encoder (secret-tree-codec.ts).
 *
 * The live part names the epoch part it belongs with by a random id, so a pair that was never
 * written together (a corrupt row, a bug in a store) fails to decode instead of mixing one epoch's
 * secrets with another's tree.
 *
 * Whether the epoch part changed is decided by identity, not by comparing bytes: the engine's
 * functions return new states that share every object they did not change (ts-mls's
 * `{ ...state, secretTree }` for an application message). When every epoch-part field of the new
 * state is the very object the stored state had, the stored epoch part is still exact. A false
 * "changed" only costs an encode; a false "unchanged" is impossible, since equal references are
 * equal values (stored states are never mutated; wipeConsumed only zeroes secrets of the secret
 * trees, which live in the live part).
 *
 * Past epochs: PROTOCOL.md §9 "Delivery" accepts application messages from up to 4 past epochs,
 * which is ts-mls's retention (context.ts). Opening such a message reads the past tree's leaves
 * only (the sender's signature key, messageProtection.js validateSenderData and
 * getSignaturePublicKeyFromLeafIndex), so the epoch part keeps each past tree's leaves and blanks
 * its parent nodes: about half of each copy, and nothing a past epoch is used for.
 *
 * Epoch part: u8 version = 2 | 16 id | u32 length | ts-mls encodeGroupState of the state with
 *   empty secret trees and no proposals
 * Live part:  u8 version = 2 | 16 id of its epoch part | extras (state.ts) | u32 length | ts-mls
 *   unapplied proposals | u8 count | count × (u64 epoch | u32 length | secret tree)
 */
import { randomBytes } from 'node:crypto';
import { encodeGroupState } from 'ts-mls';
import type { GroupState } from 'ts-mls';
import { encode } from 'ts-mls/codec/tlsEncoder.js';
import type { EpochReceiverData } from 'ts-mls/epochReceiverData.js';
import type { RatchetTree } from 'ts-mls/ratchetTree.js';
import type { SecretTree } from 'ts-mls/secretTree.js';
import { decodeUnappliedProposals, unappliedProposalsEncoder } from 'ts-mls/unappliedProposals.js';
import { equalBytes } from '../bytes.js';
import { CodecError } from '../errors.js';
import { readSecretTree, writeSecretTree, writeSecretTreeFrom } from './secret-tree-codec.js';
import { ByteReader, ByteWriter } from './session-bytes.js';
import {
  decodeSession,
  decodeTsMlsGroupState,
  readSessionExtras,
  unwrap,
  wrap,
  writeSessionExtras,
  type GroupSession,
  type SessionData,
} from './state.js';

/** The leading version byte of both parts (format 1 is state.ts's single blob). */
export const GROUP_STATE_PARTS_VERSION = 2;
const ID_BYTES = 16;
/** A live part's secret tree section: u64 epoch | u32 length, then the tree. */
const SECTION_HEADER_BYTES = 12;
const encodeProposals = encode(unappliedProposalsEncoder);

/** A group state as stored: both parts. */
export interface StoredGroupState {
  /** What every message changes: GroupRecord.state. */
  readonly live: Uint8Array;
  /** What changes only with the epoch: GroupRecord.epochState. */
  readonly epoch: Uint8Array;
}

/** Both parts of a group state to store, and whether the epoch part must be written. */
export interface EncodedGroupState extends StoredGroupState {
  /** False when `epoch` is the basis's own epoch part (the same bytes, not encoded again). */
  readonly epochChanged: boolean;
}

/** The state a write starts from: the decoded session and the parts it was stored as. */
export interface GroupStateBasis {
  /** The decoded state of `stored`, exactly (the cache's entry for the record's version, or its decode). */
  readonly session: GroupSession;
  readonly stored: StoredGroupState;
}

/** True when `b` has every epoch-part object of `a` (see the module comment). */
function sameEpochPart(a: GroupState, b: GroupState): boolean {
  if (
    a.groupContext !== b.groupContext ||
    a.keySchedule !== b.keySchedule ||
    a.ratchetTree !== b.ratchetTree ||
    a.privatePath !== b.privatePath ||
    a.signaturePrivateKey !== b.signaturePrivateKey ||
    a.confirmationTag !== b.confirmationTag ||
    a.groupActiveState !== b.groupActiveState ||
    a.historicalReceiverData.size !== b.historicalReceiverData.size
  ) {
    return false;
  }
  for (const [epoch, x] of a.historicalReceiverData) {
    const y = b.historicalReceiverData.get(epoch);
    if (
      y === undefined ||
      x.ratchetTree !== y.ratchetTree ||
      x.groupContext !== y.groupContext ||
      x.senderDataSecret !== y.senderDataSecret ||
      x.resumptionPsk !== y.resumptionPsk
    ) {
      return false;
    }
  }
  return true;
}

/** A past epoch's tree as far as opening its messages needs it: the leaves, parents blank. */
const leavesOnly = (tree: RatchetTree): RatchetTree =>
  tree.map((node, i) => (i % 2 === 0 ? node : undefined));

function encodeEpochPart(group: GroupState): Uint8Array {
  const history = new Map<bigint, EpochReceiverData>();
  for (const [epoch, data] of group.historicalReceiverData) {
    history.set(epoch, { ...data, secretTree: [], ratchetTree: leavesOnly(data.ratchetTree) });
  }
  const w = new ByteWriter(64 * 1024);
  w.u8(GROUP_STATE_PARTS_VERSION);
  w.raw(randomBytes(ID_BYTES));
  w.long(
    encodeGroupState({ ...group, secretTree: [], unappliedProposals: {}, historicalReceiverData: history }),
  );
  return w.finish();
}

/** Each secret tree section of a live part, by epoch, as the raw bytes of that section. */
function secretTreeSections(live: Uint8Array): Map<bigint, Uint8Array> {
  const r = new ByteReader(live);
  r.skip(1 + ID_BYTES);
  readSessionExtras(r);
  r.skip(r.u32());
  const sections = new Map<bigint, Uint8Array>();
  for (let count = r.u8(); count > 0; count--) {
    const start = r.position;
    r.skip(8);
    r.skip(r.u32());
    sections.set(
      new DataView(live.buffer, live.byteOffset + start).getBigUint64(0),
      live.subarray(start, r.position),
    );
  }
  return sections;
}

/** The secret trees a state holds, current epoch first. */
function secretTreesOf(group: GroupState): Array<[bigint, SecretTree]> {
  const trees: Array<[bigint, SecretTree]> = [[group.groupContext.epoch, group.secretTree]];
  for (const [epoch, data] of group.historicalReceiverData) trees.push([epoch, data.secretTree]);
  return trees;
}

function encodeLivePart(data: SessionData, epochPart: Uint8Array, basis?: GroupStateBasis): Uint8Array {
  const group = data.group;
  // Sized like the basis: the live part keeps its size from message to message.
  const w = new ByteWriter((basis?.stored.live.length ?? 32 * 1024) + 256);
  w.u8(GROUP_STATE_PARTS_VERSION);
  w.raw(epochPart.subarray(1, 1 + ID_BYTES));
  writeSessionExtras(w, data);
  w.long(encodeProposals(group.unappliedProposals));
  const trees = secretTreesOf(group);
  if (trees.length > 255) throw new CodecError('too many retained epochs for the session format');
  w.u8(trees.length);
  // A tree the basis holds as the same object is copied from the basis's bytes: the retained past
  // epochs' trees rarely move. One that moved (the current epoch's, at the sender's leaf) is
  // written from the basis's encoding of it, so only its changed leaves are encoded.
  const before = new Map(basis ? secretTreesOf(unwrap(basis.session).group) : []);
  const sections = basis ? secretTreeSections(basis.stored.live) : undefined;
  for (const [epoch, tree] of trees) {
    const old = before.get(epoch);
    const section = sections?.get(epoch);
    if (old === tree && section) {
      w.raw(section);
      continue;
    }
    w.u64(epoch);
    w.withLength(() =>
      old && section
        ? writeSecretTreeFrom(w, tree, old, section.subarray(SECTION_HEADER_BYTES))
        : writeSecretTree(w, tree),
    );
  }
  return w.finish();
}

/**
 * The two parts of `session`. With a basis (the state this one was made from, as loaded) the
 * epoch part is reused when it did not change, and unchanged secret trees are copied, not encoded.
 */
export function encodeGroupSession(session: GroupSession, basis?: GroupStateBasis): EncodedGroupState {
  const data = unwrap(session);
  const reuse = basis !== undefined && sameEpochPart(unwrap(basis.session).group, data.group);
  const epoch = reuse ? basis.stored.epoch : encodeEpochPart(data.group);
  // The basis serves the live part even across a commit: the old epoch's tree is now a past one.
  return { live: encodeLivePart(data, epoch, basis), epoch, epochChanged: !reuse };
}

/** Both parts back to a state; a CodecError when they do not decode or were not written together. */
export function decodeGroupSession(stored: StoredGroupState): GroupSession {
  const e = new ByteReader(stored.epoch, 'group epoch state');
  if (e.u8() !== GROUP_STATE_PARTS_VERSION) throw new CodecError('unknown group epoch state version');
  const id = e.raw(ID_BYTES);
  const base = decodeTsMlsGroupState(e.long());
  e.end();

  const r = new ByteReader(stored.live, 'group live state');
  if (r.u8() !== GROUP_STATE_PARTS_VERSION) throw new CodecError('unknown group live state version');
  if (!equalBytes(r.raw(ID_BYTES), id))
    throw new CodecError('group live state belongs to another epoch part');
  const extras = readSessionExtras(r);
  const proposalBytes = r.long();
  const proposals = decodeUnappliedProposals(proposalBytes, 0);
  if (proposals === undefined || proposals[1] !== proposalBytes.length) {
    throw new CodecError('stored group proposals do not decode');
  }
  const trees = new Map<bigint, SecretTree>();
  for (let count = r.u8(); count > 0; count--) {
    const epoch = r.u64();
    const section = new ByteReader(r.long(), 'group secret tree');
    trees.set(epoch, readSecretTree(section));
    section.end();
  }
  r.end();

  const treeOf = (epoch: bigint): SecretTree => {
    const tree = trees.get(epoch);
    if (tree === undefined) throw new CodecError(`group live state has no secret tree for epoch ${epoch}`);
    return tree;
  };
  const history = new Map<bigint, EpochReceiverData>();
  for (const [epoch, data] of base.historicalReceiverData) {
    history.set(epoch, { ...data, secretTree: treeOf(epoch) });
  }
  if (trees.size !== history.size + 1)
    throw new CodecError('group live state has secret trees of other epochs');
  const group: GroupState = {
    ...base,
    secretTree: treeOf(base.groupContext.epoch),
    unappliedProposals: proposals[0],
    historicalReceiverData: history,
  };
  return wrap({ group, ...extras });
}

/**
 * A stored state of either format: the two parts, or (rows written before the split, and 1:1
 * sessions) one encodeSession blob with no epoch part.
 */
export function decodeStoredSession(state: Uint8Array, epochState: Uint8Array | undefined): GroupSession {
  return epochState === undefined
    ? decodeSession(state)
    : decodeGroupSession({ live: state, epoch: epochState });
}
