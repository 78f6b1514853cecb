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

class Writer {
  private readonly chunks: Uint8Array[] = [];
  u8(n: number): void {
    this.chunks.push(Uint8Array.of(n));
  }
  u32(n: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n, false);
    this.chunks.push(b);
  }
  u64(n: bigint): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, n, false);
    this.chunks.push(b);
  }
  short(bytes: Uint8Array): void {
    if (bytes.length > 255) throw new CodecError('field too long for the session format');
    this.u8(bytes.length);
    this.chunks.push(bytes);
  }
  raw(bytes: Uint8Array): void {
    this.chunks.push(bytes);
  }
  finish(): Uint8Array {
    let length = 0;
    for (const c of this.chunks) length += c.length;
    const out = new Uint8Array(length);
    let offset = 0;
    for (const c of this.chunks) {
      out.set(c, offset);
      offset += c.length;
    }
    return out;
  }
}

class Reader {
  private offset = 0;
  constructor(private readonly bytes: Uint8Array) {}
  private take(n: number): Uint8Array {
    if (this.offset + n > this.bytes.length) throw new CodecError('truncated session state');
    const out = this.bytes.slice(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }
  u8(): number {
    return this.take(1)[0]!;
  }
  u32(): number {
    return new DataView(this.take(4).buffer).getUint32(0, false);
  }
  u64(): bigint {
    return new DataView(this.take(8).buffer).getBigUint64(0, false);
  }
  short(): Uint8Array {
    return this.take(this.u8());
  }
  raw(n: number): Uint8Array {
    return this.take(n);
  }
  end(): void {
    if (this.offset !== this.bytes.length) throw new CodecError('trailing bytes after session state');
  }
}

/** Everything needed to continue the session, secrets included: store it encrypted at rest. */
export function encodeSession(session: GroupSession): Uint8Array {
  const data = unwrap(session);
  const w = new Writer();
  w.u8(SESSION_FORMAT_VERSION);
  const group = encodeGroupState(data.group);
  w.u32(group.length);
  w.raw(group);
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
  return w.finish();
}

export function decodeSession(bytes: Uint8Array): GroupSession {
  const r = new Reader(bytes);
  const version = r.u8();
  if (version !== SESSION_FORMAT_VERSION) {
    throw new CodecError(`unknown session format version ${version}`);
  }
  const groupBytes = r.raw(r.u32());
  let decoded;
  try {
    decoded = decodeGroupState(groupBytes, 0);
  } catch (e) {
    throw new CodecError('stored MLS group state does not decode', { cause: e });
  }
  if (decoded === undefined || decoded[1] !== groupBytes.length) {
    throw new CodecError('stored MLS group state does not decode');
  }
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
  r.end();
  return wrap({
    group: decoded[0],
    ...(previousExporter !== undefined ? { previousExporter } : {}),
    ...(pendingUpdate !== undefined ? { pendingUpdate } : {}),
  });
}
