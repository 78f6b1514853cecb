/**
 * A group's MLS state stored in two parts (issue #12), so that a member that sends or receives an
 * application message writes only what the message changed:
 *
 * - the **epoch part**: everything that changes only when the epoch changes: group context, key
 *   schedule, ratchet tree, our private path and signature key, confirmation tag, and for each
 *   retained past epoch its tree, context and sender-data secret; and the past epochs' secret
 *   trees, which move only when a late message from a past epoch is opened. Large (a 100-member
 *   group's is about 140 KB), its ts-mls section encoded by ts-mls, which costs ~0.1 ms per KB:
 *   encoded once per epoch. When only a past secret tree moved, the epoch part is written again
 *   with its ts-mls section copied from the stored bytes, not encoded.
 * - the **live part**: the current epoch's secret tree, the proposals waiting for a commit, and
 *   our own extras (previous exporter, pending Update). The secret tree moves with every message
 *   (RFC 9420 §9.1 ratchets), so this part is written every time, with our own flat encoder
 *   (secret-tree-codec.ts): about 72 bytes per member.
 *
 * Every write replaces each secret tree that moved wherever it is stored, so a ratchet secret that
 * was used up is never left behind in a part that was not rewritten (forward secrecy, RFC 9420
 * §9.2: the stored state holds only the ratchets as they are now).
 *
 * The live part names the epoch part it belongs with by a random id, so a pair that was never
 * written together (a corrupt row, a bug in a store) fails to decode instead of mixing one epoch's
 * secrets with another's tree.
 *
 * Whether the epoch part changed is decided by identity, not by comparing bytes: the engine's
 * functions return new states that share every object they did not change (ts-mls's
 * `{ ...state, secretTree }` for an application message). When every epoch-part field of the new
 * state is the very object the stored state had, the stored epoch part is still exact. A false
 * "changed" only costs a write; a false "unchanged" is impossible, since equal references are
 * equal values (stored states are never mutated; wipeConsumed only zeroes secrets of consumed
 * ratchets, which a new state no longer holds).
 *
 * Past epochs: PROTOCOL.md §9 "Delivery" accepts application messages from up to 4 past epochs,
 * which is ts-mls's retention (context.ts). Opening such a message reads the past tree's leaves
 * only (the sender's signature key, messageProtection.js validateSenderData and
 * getSignaturePublicKeyFromLeafIndex), so the epoch part keeps each past tree's leaves and blanks
 * its parent nodes: about half of each copy, and nothing a past epoch is used for.
 *
 * Epoch part: u8 version = 3 | 16 id | u32 length | ts-mls encodeGroupState of the state with
 *   empty secret trees and no proposals | the past epochs' secret trees (secret-tree-sections.ts)
 * Live part:  u8 version = 3 | 16 id of its epoch part | extras (state.ts) | u32 length | ts-mls
 *   unapplied proposals | the current epoch's secret tree (a section list of one)
 *
 * Version 2 (written before): the same, but the epoch part holds no secret trees and the live part
 * holds all of them. Both versions read; a part of either version holds the trees it holds, and a
 * state decodes only when its two parts hold each retained epoch's tree exactly once.
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
import {
  readTreeSections,
  sectionsAt,
  storedTrees,
  writeTreeSections,
  type StoredTrees,
} from './secret-tree-sections.js';
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

/** The leading version byte of both parts (format 1 is state.ts's single blob, 2 the one before). */
export const GROUP_STATE_PARTS_VERSION = 3;
/** Still read: the epoch part holds no secret trees, the live part all of them. */
const VERSION_TREES_LIVE = 2;
const ID_BYTES = 16;
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

/** True when `b` has every epoch-part object of `a` but the past secret trees (module comment). */
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

/** The ts-mls section of the epoch part: the state without secret trees and proposals. */
function encodeTsMlsSection(group: GroupState): Uint8Array {
  const history = new Map<bigint, EpochReceiverData>();
  for (const [epoch, data] of group.historicalReceiverData) {
    history.set(epoch, { ...data, secretTree: [], ratchetTree: leavesOnly(data.ratchetTree) });
  }
  return encodeGroupState({
    ...group,
    secretTree: [],
    unappliedProposals: {},
    historicalReceiverData: history,
  });
}

/** The retained past epochs' secret trees, in the state's order. */
function pastTreesOf(group: GroupState): Array<[bigint, SecretTree]> {
  return [...group.historicalReceiverData].map(([epoch, data]) => [epoch, data.secretTree]);
}

function currentTreeOf(group: GroupState): Array<[bigint, SecretTree]> {
  return [[group.groupContext.epoch, group.secretTree]];
}

/** A stored epoch part taken apart without decoding: views of its bytes. */
interface EpochLayout {
  readonly version: number;
  readonly tsMls: Uint8Array;
  /** The past secret trees' sections (none in version 2). */
  readonly trees: Map<bigint, Uint8Array>;
}

function epochLayout(epoch: Uint8Array): EpochLayout {
  const r = new ByteReader(epoch, 'group epoch state');
  const version = r.u8();
  if (version !== GROUP_STATE_PARTS_VERSION && version !== VERSION_TREES_LIVE) {
    throw new CodecError('unknown group epoch state version');
  }
  r.skip(ID_BYTES);
  const length = r.u32();
  const at = r.position;
  r.skip(length);
  const trees = version === VERSION_TREES_LIVE ? new Map<bigint, Uint8Array>() : sectionsAt(r, epoch);
  r.end();
  return { version, tsMls: epoch.subarray(at, at + length), trees };
}

/** The secret tree sections of a stored live part, as views of its bytes. */
function liveSections(live: Uint8Array): Map<bigint, Uint8Array> {
  const r = new ByteReader(live, 'group live state');
  r.skip(1 + ID_BYTES);
  readSessionExtras(r);
  r.skip(r.u32());
  const sections = sectionsAt(r, live);
  r.end();
  return sections;
}

function writeEpochPart(
  tsMls: Uint8Array,
  past: Array<[bigint, SecretTree]>,
  basis?: StoredTrees,
): Uint8Array {
  const w = new ByteWriter(tsMls.length + 1024 + past.length * 8 * 1024);
  w.u8(GROUP_STATE_PARTS_VERSION);
  w.raw(randomBytes(ID_BYTES));
  w.long(tsMls);
  writeTreeSections(w, past, basis);
  return w.finish();
}

function writeLivePart(
  data: SessionData,
  epochPart: Uint8Array,
  basis?: GroupStateBasis,
  trees?: StoredTrees,
): Uint8Array {
  const group = data.group;
  const w = new ByteWriter(Math.min(basis?.stored.live.length ?? 32 * 1024, 64 * 1024) + 256);
  w.u8(GROUP_STATE_PARTS_VERSION);
  w.raw(epochPart.subarray(1, 1 + ID_BYTES));
  writeSessionExtras(w, data);
  w.long(encodeProposals(group.unappliedProposals));
  writeTreeSections(w, currentTreeOf(group), trees);
  return w.finish();
}

/**
 * The two parts of `session`. With a basis (the state this one was made from, as loaded) the
 * epoch part is reused when neither it nor a past secret tree changed, its ts-mls section is
 * copied when only a past secret tree changed, and secret trees are written from the basis's
 * encoding of them (secret-tree-sections.ts).
 */
export function encodeGroupSession(session: GroupSession, basis?: GroupStateBasis): EncodedGroupState {
  const data = unwrap(session);
  const group = data.group;
  const past = pastTreesOf(group);
  if (basis === undefined) {
    const epoch = writeEpochPart(encodeTsMlsSection(group), past);
    return { live: writeLivePart(data, epoch), epoch, epochChanged: true };
  }
  const before = unwrap(basis.session).group;
  const layout = epochLayout(basis.stored.epoch);
  // Across a commit too: the old current tree is now a past one, written from its live section.
  const trees = storedTrees(
    [...currentTreeOf(before), ...pastTreesOf(before)],
    new Map([...layout.trees, ...liveSections(basis.stored.live)]),
  );
  const sameEpoch = sameEpochPart(before, group);
  const pastSame =
    sameEpoch &&
    layout.version === GROUP_STATE_PARTS_VERSION &&
    past.every(([epoch, tree]) => layout.trees.has(epoch) && trees.get(epoch)?.tree === tree);
  const epoch = pastSame
    ? basis.stored.epoch
    : writeEpochPart(sameEpoch ? layout.tsMls : encodeTsMlsSection(group), past, trees);
  return { live: writeLivePart(data, epoch, basis, trees), epoch, epochChanged: !pastSame };
}

/** A live part read: its extras, proposals and secret trees, checked against its epoch part's id. */
function readLivePart(
  live: Uint8Array,
  version: number,
  epochId: Uint8Array,
  trees: Map<bigint, SecretTree>,
) {
  const r = new ByteReader(live, 'group live state');
  if (r.u8() !== version) throw new CodecError('unknown group live state version');
  if (!equalBytes(r.raw(ID_BYTES), epochId))
    throw new CodecError('group live state belongs to another epoch part');
  const extras = readSessionExtras(r);
  const proposalBytes = r.long();
  const proposals = decodeUnappliedProposals(proposalBytes, 0);
  if (proposals === undefined || proposals[1] !== proposalBytes.length) {
    throw new CodecError('stored group proposals do not decode');
  }
  readTreeSections(r, trees);
  r.end();
  return { extras, proposals: proposals[0] };
}

/** Both parts back to a state; a CodecError when they do not decode or were not written together. */
export function decodeGroupSession(stored: StoredGroupState): GroupSession {
  const trees = new Map<bigint, SecretTree>();
  const e = new ByteReader(stored.epoch, 'group epoch state');
  const version = e.u8();
  if (version !== GROUP_STATE_PARTS_VERSION && version !== VERSION_TREES_LIVE) {
    throw new CodecError('unknown group epoch state version');
  }
  const id = e.raw(ID_BYTES);
  const base = decodeTsMlsGroupState(e.long());
  if (version === GROUP_STATE_PARTS_VERSION) readTreeSections(e, trees);
  e.end();
  const { extras, proposals } = readLivePart(stored.live, version, id, trees);

  const treeOf = (epoch: bigint): SecretTree => {
    const tree = trees.get(epoch);
    if (tree === undefined) throw new CodecError(`group state has no secret tree for epoch ${epoch}`);
    return tree;
  };
  const history = new Map<bigint, EpochReceiverData>();
  for (const [epoch, data] of base.historicalReceiverData) {
    history.set(epoch, { ...data, secretTree: treeOf(epoch) });
  }
  if (trees.size !== history.size + 1) throw new CodecError('group state has secret trees of other epochs');
  const group: GroupState = {
    ...base,
    secretTree: treeOf(base.groupContext.epoch),
    unappliedProposals: proposals,
    historicalReceiverData: history,
  };
  return wrap({ group, ...extras });
}

/** Equal bytes, by memcmp: both are our own stored parts, no secret compared with an input. */
const sameStoredBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a === b ||
  Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));

/**
 * decodeGroupSession when `known` is the state that `stored.epoch` was written from or decoded to
 * (a cached state of an older version of the same record, whose epoch part is still the stored
 * one, byte for byte): only the live part is decoded, and the epoch part's objects are `known`'s.
 * That is what an application message on another replica leaves (it rewrites the live part only),
 * and it spares the epoch part's decode, the large one (~0.1 ms per KB). The past epochs' secret
 * trees are `known`'s too: a past tree that moved is written to a new epoch part (module comment),
 * so an unchanged epoch part means unchanged past trees. Undefined when the epoch part is not
 * `known`'s or is of version 2 (whose live part holds the past trees): decode both parts then.
 */
export function decodeGroupSessionOnEpoch(
  stored: StoredGroupState,
  known: { session: GroupSession; epoch: Uint8Array },
): GroupSession | undefined {
  if (stored.epoch[0] !== GROUP_STATE_PARTS_VERSION || !sameStoredBytes(stored.epoch, known.epoch)) {
    return undefined;
  }
  const base = unwrap(known.session).group;
  const trees = new Map<bigint, SecretTree>();
  const id = stored.epoch.subarray(1, 1 + ID_BYTES);
  const { extras, proposals } = readLivePart(stored.live, GROUP_STATE_PARTS_VERSION, id, trees);
  const current = trees.get(base.groupContext.epoch);
  if (current === undefined || trees.size !== 1) {
    throw new CodecError('group live state holds secret trees of other epochs');
  }
  const group: GroupState = { ...base, secretTree: current, unappliedProposals: proposals };
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
