/**
 * GroupSession: our opaque wrapper around a ts-mls group state, its storage format and read-only
 * accessors. Callers never see ts-mls types, so a ts-mls upgrade (2.0 changes both API and state
 * format) stays inside this directory; the leading format byte lets stored states be migrated.
 */
import { decodeGroupState, encodeGroupState } from 'ts-mls';
import type { ClientState, GroupState } from 'ts-mls';
import { equalBytes } from '../bytes.js';
import { CodecError, ProtocolError } from '../errors.js';
import { userIdFromKey } from './auth.js';
import type { MlsContext } from './context.js';
import { ByteReader, ByteWriter } from './session-bytes.js';

declare const sessionBrand: unique symbol;
/** An MLS group state. Opaque: use the functions of this module and engine.ts. Never mutated. */
export type GroupSession = { readonly [sessionBrand]: true };

export interface SessionData {
  readonly group: GroupState;
  /**
   * The previous epoch's exporter secret (RFC 9420 §8.5). ts-mls keeps no exporter secret for past
   * epochs, but access tokens (PROTOCOL.md §5) are accepted for the current and previous epoch.
   */
  readonly previousExporter?: { readonly epoch: bigint; readonly secret: Uint8Array };
  /** Our own Update proposal's new leaf key pair, kept until a commit settles it (PROTOCOL.md §9). */
  readonly pendingUpdate?: {
    readonly epoch: bigint;
    readonly hpkePrivateKey: Uint8Array;
    readonly hpkePublicKey: Uint8Array;
  };
}

export function wrap(data: SessionData): GroupSession {
  return data as unknown as GroupSession;
}

export function unwrap(session: GroupSession): SessionData {
  return session as unknown as SessionData;
}

/** The ts-mls client state for a call: our stored group state plus this context's configuration. */
export function clientStateOf(ctx: MlsContext, session: GroupSession): ClientState {
  return { ...unwrap(session).group, clientConfig: ctx.clientConfig };
}

/** Drops the per-call configuration again so that only group state is kept and stored. */
export function groupStateOf(state: ClientState): GroupState {
  const { clientConfig: _unused, ...group } = state;
  return group;
}

export interface Member {
  readonly leafIndex: number;
  /** The member's Ed25519 credential key. */
  readonly identityKey: Uint8Array;
  readonly userId: Uint8Array;
}

export function epochOf(session: GroupSession): bigint {
  return unwrap(session).group.groupContext.epoch;
}

/**
 * Whether we were in the epoch before this one: we moved to this epoch by a commit (ours or
 * received), which keeps the previous epoch's exporter. A state joined from a Welcome starts at the
 * Welcome's epoch and has no previous one.
 */
export function cameFromPreviousEpoch(session: GroupSession): boolean {
  const data = unwrap(session);
  return data.previousExporter?.epoch === data.group.groupContext.epoch - 1n;
}

export function groupIdOf(session: GroupSession): Uint8Array {
  return unwrap(session).group.groupContext.groupId;
}

export function ownLeafIndex(session: GroupSession): number {
  return unwrap(session).group.privatePath.leafIndex;
}

export function membersOf(session: GroupSession): Member[] {
  return membersOfTree(unwrap(session).group.ratchetTree);
}

export function membersOfTree(tree: GroupState['ratchetTree']): Member[] {
  const members: Member[] = [];
  // RFC 9420 §4.1: leaves sit at even node indices; leaf i is node 2i.
  for (let nodeIndex = 0; nodeIndex < tree.length; nodeIndex += 2) {
    const member = memberAt(tree, nodeIndex / 2);
    if (member !== undefined) members.push(member);
  }
  return members;
}

/** The member at one leaf, or undefined when it is blank; hashes only that leaf's key. */
export function memberAt(tree: GroupState['ratchetTree'], leafIndex: number): Member | undefined {
  const node = tree[leafIndex * 2];
  if (node?.nodeType !== 'leaf') return undefined;
  const key = node.leaf.signaturePublicKey;
  return { leafIndex, identityKey: key, userId: userIdFromKey(key) };
}

/** The lowest leaf whose credential key is `identityKey`. */
export function memberWithKey(tree: GroupState['ratchetTree'], identityKey: Uint8Array): Member | undefined {
  for (let nodeIndex = 0; nodeIndex < tree.length; nodeIndex += 2) {
    const node = tree[nodeIndex];
    if (node?.nodeType === 'leaf' && equalBytes(node.leaf.signaturePublicKey, identityKey)) {
      return memberAt(tree, nodeIndex / 2);
    }
  }
  return undefined;
}

/** PROTOCOL.md §7/§9: the member at the lowest occupied leaf is the one that commits. */
export function committerLeafIndex(tree: GroupState['ratchetTree']): number | undefined {
  for (let nodeIndex = 0; nodeIndex < tree.length; nodeIndex += 2) {
    if (tree[nodeIndex]?.nodeType === 'leaf') return nodeIndex / 2;
  }
  return undefined;
}

/**
 * PROTOCOL.md §9: the member at the second-lowest occupied leaf, the only one besides the committer
 * that may commit, and only a commit removing the committer (the hand-over).
 */
export function nextCommitterLeafIndex(tree: GroupState['ratchetTree']): number | undefined {
  let seen = false;
  for (let nodeIndex = 0; nodeIndex < tree.length; nodeIndex += 2) {
    if (tree[nodeIndex]?.nodeType !== 'leaf') continue;
    if (seen) return nodeIndex / 2;
    seen = true;
  }
  return undefined;
}

export function isCommitter(session: GroupSession): boolean {
  const group = unwrap(session).group;
  return committerLeafIndex(group.ratchetTree) === group.privatePath.leafIndex;
}

/** True when we would take over as committer once the committer's Remove is committed. */
export function isNextCommitter(session: GroupSession): boolean {
  const group = unwrap(session).group;
  return nextCommitterLeafIndex(group.ratchetTree) === group.privatePath.leafIndex;
}

export function committerOf(session: GroupSession): Member {
  const tree = unwrap(session).group.ratchetTree;
  const leaf = committerLeafIndex(tree);
  const committer = leaf === undefined ? undefined : memberAt(tree, leaf);
  // Our own leaf is always occupied in a session we hold, so the tree is never empty.
  if (committer === undefined) throw new ProtocolError('group has no members');
  return committer;
}

export function memberByIdentityKey(session: GroupSession, identityKey: Uint8Array): Member | undefined {
  return memberWithKey(unwrap(session).group.ratchetTree, identityKey);
}

/** True while proposals (ours or the peer's) await a commit. */
export function hasPendingProposals(session: GroupSession): boolean {
  return Object.keys(unwrap(session).group.unappliedProposals).length > 0;
}

/** True while our own Update proposal awaits the committer's commit. */
export function hasPendingUpdate(session: GroupSession): boolean {
  return unwrap(session).pendingUpdate !== undefined;
}

// Storage format v1:
//   u8 version = 1 | u32 length | ts-mls encodeGroupState bytes | u8 flags
//   flags & 1: u64 epoch | u8 length | previous exporter secret
//   flags & 2: u64 epoch | u8 length | hpke private key | u8 length | hpke public key
export const SESSION_FORMAT_VERSION = 1;
const FLAG_PREVIOUS_EXPORTER = 1;
const FLAG_PENDING_UPDATE = 2;

/** Everything needed to continue the session, secrets included: store it encrypted at rest. */
export function encodeSession(session: GroupSession): Uint8Array {
  const data = unwrap(session);
  const w = new ByteWriter();
  w.u8(SESSION_FORMAT_VERSION);
  w.long(encodeGroupState(data.group));
  writeSessionExtras(w, data);
  return w.finish();
}

/** The fields we keep beside ts-mls's state: u8 flags, then the fields they announce. */
export function writeSessionExtras(w: ByteWriter, data: SessionData): void {
  let flags = 0;
  if (data.previousExporter !== undefined) flags |= FLAG_PREVIOUS_EXPORTER;
  if (data.pendingUpdate !== undefined) flags |= FLAG_PENDING_UPDATE;
  w.u8(flags);
  if (data.previousExporter !== undefined) {
    w.u64(data.previousExporter.epoch);
    w.short(data.previousExporter.secret);
  }
  if (data.pendingUpdate !== undefined) {
    w.u64(data.pendingUpdate.epoch);
    w.short(data.pendingUpdate.hpkePrivateKey);
    w.short(data.pendingUpdate.hpkePublicKey);
  }
}

export type SessionExtras = Pick<SessionData, 'previousExporter' | 'pendingUpdate'>;

export function readSessionExtras(r: ByteReader): SessionExtras {
  const flags = r.u8();
  if ((flags & ~(FLAG_PREVIOUS_EXPORTER | FLAG_PENDING_UPDATE)) !== 0) {
    throw new CodecError('unknown session flags');
  }
  let previousExporter: SessionData['previousExporter'];
  let pendingUpdate: SessionData['pendingUpdate'];
  if (flags & FLAG_PREVIOUS_EXPORTER) previousExporter = { epoch: r.u64(), secret: r.short() };
  if (flags & FLAG_PENDING_UPDATE) {
    pendingUpdate = { epoch: r.u64(), hpkePrivateKey: r.short(), hpkePublicKey: r.short() };
  }
  return {
    ...(previousExporter !== undefined ? { previousExporter } : {}),
    ...(pendingUpdate !== undefined ? { pendingUpdate } : {}),
  };
}

/** ts-mls encodeGroupState bytes back to a state; a CodecError when they are not exactly that. */
export function decodeTsMlsGroupState(bytes: Uint8Array): GroupState {
  let decoded;
  try {
    decoded = decodeGroupState(bytes, 0);
  } catch (e) {
    throw new CodecError('stored MLS group state does not decode', { cause: e });
  }
  if (decoded === undefined || decoded[1] !== bytes.length) {
    throw new CodecError('stored MLS group state does not decode');
  }
  return decoded[0];
}

export function decodeSession(bytes: Uint8Array): GroupSession {
  const r = new ByteReader(bytes);
  const version = r.u8();
  if (version !== SESSION_FORMAT_VERSION) {
    throw new CodecError(`unknown session format version ${version}`);
  }
  const group = decodeTsMlsGroupState(r.long());
  const extras = readSessionExtras(r);
  r.end();
  return wrap({ group, ...extras });
}
