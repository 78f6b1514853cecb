/**
 * The MLS engine for Relay sessions: pure functions over GroupSession, in front of ts-mls 1.6.4.
 *
 * Every function takes (ctx, session, input) and returns a new session plus outputs; the input
 * session object is never changed. Functions that retire secrets also return `consumed`: those
 * arrays are shared with the *previous* session object, so zeroise them with `wipeConsumed` only
 * after the new session is stored and the old one will not be used again.
 */
import { randomBytes } from 'node:crypto';
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  createProposal,
  decodeMlsMessage,
  emptyPskIndex,
  encodeMlsMessage,
  joinGroup,
  makePskIndex,
  mlsExporter,
  processPrivateMessage,
} from 'ts-mls';
import type {
  ClientState,
  GroupInfo,
  GroupState,
  IncomingMessageCallback,
  KeyPackage,
  LeafNodeUpdate,
  PrivateKeyPackage,
  PrivateMessage,
  ProcessMessageResult,
  Proposal,
  ProposalWithSender,
  RatchetTree,
  Welcome,
} from 'ts-mls';
import { signWithLabel } from 'ts-mls/crypto/signature.js';
import { ratchetTreeFromExtension } from 'ts-mls/groupInfo.js';
import { encodeLeafNodeTBS, verifyLeafNodeSignature } from 'ts-mls/leafNode.js';
import { CodecError as MlsCodecError, CryptoError, CryptoVerificationError } from 'ts-mls/mlsError.js';
import { decodeRatchetTree, encodeRatchetTree, stripBlankNodes } from 'ts-mls/ratchetTree.js';
import { decryptGroupInfo, decryptGroupSecrets } from 'ts-mls/welcome.js';
import { GROUP_ID_LENGTH } from '../brand.js';
import { equalBytes, wipe } from '../bytes.js';
import { ArgumentError, CodecError, ProtocolError, RelayError, VerificationError } from '../errors.js';
import { credentialIsValid } from './auth.js';
import { RELAY_CIPHERSUITE, type MlsContext } from './context.js';
import {
  checkIdentity,
  checkKeyPackage,
  decodeKeyPackageMessage,
  decodePrivateKeyPackage,
  newKeyPackage,
  type SigningIdentity,
} from './keypackage.js';
import { parsedMessage, peekPrivateMessage, type DecodedMessage, type MlsContentType } from './sender.js';
import { assertTreeBounds, GroupLimitError, welcomeTreeLimits } from './tree-bounds.js';
import {
  clientStateOf,
  committerLeafIndex,
  groupStateOf,
  memberAt,
  membersOfTree,
  memberWithKey,
  unwrap,
  wrap,
  type GroupSession,
  type Member,
  type SessionData,
} from './state.js';

export { GroupLimitError };

/**
 * A message our own leaf sent. Members subscribe with MQTT No Local and never see their own, but a
 * broker that ignores No Local echoes them back; it is a copy of what we have, not an attack.
 */
export class OwnMessageError extends ProtocolError {}

/** Secrets retired by a step; see the module comment for when to wipe them. */
export type Consumed = readonly Uint8Array[];

export function wipeConsumed(consumed: Consumed): void {
  for (const secret of consumed) wipe(secret);
}

/** Maps ts-mls failures onto our error hierarchy, keeping the original as `cause`. */
function asRelayError(e: unknown, what: string): RelayError {
  if (e instanceof RelayError) return e;
  const detail = e instanceof Error ? e.message : String(e);
  if (e instanceof CryptoVerificationError || e instanceof CryptoError || e instanceof MlsCodecError) {
    return new VerificationError(`${what}: ${detail}`, { cause: e });
  }
  // ValidationError, UsageError, InternalError and anything a hostile input provokes.
  return new ProtocolError(`${what}: ${detail}`, { cause: e });
}

export async function guarded<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    throw asRelayError(e, what);
  }
}

function encodePrivateMlsMessage(message: PrivateMessage): Uint8Array {
  return encodeMlsMessage({
    version: 'mls10',
    wireformat: 'mls_private_message',
    privateMessage: message,
  });
}

/** `now` if the caller fixed it, else the system clock in unix seconds. */
export function unixNow(now: number | undefined): number {
  return now ?? Math.floor(Date.now() / 1000);
}

/** The caller's group id, which must be 32 bytes, or a random one. */
export function newGroupId(groupId: Uint8Array | undefined): Uint8Array {
  const id = groupId ?? new Uint8Array(randomBytes(GROUP_ID_LENGTH));
  if (id.length !== GROUP_ID_LENGTH) throw new ArgumentError('group id must be 32 bytes');
  return id;
}

/** A group of one with us at leaf 0, so we are its committer. */
export async function createSoloGroup(
  ctx: MlsContext,
  self: SigningIdentity,
  groupId: Uint8Array,
  now: number,
): Promise<ClientState> {
  const own = await newKeyPackage(ctx, self, now);
  // The creator's own KeyPackage is never published, so its init key can never be used.
  wipe(own.privatePackage.initPrivateKey);
  return createGroup(groupId, own.publicPackage, own.privatePackage, [], ctx.cipherSuite, ctx.clientConfig);
}

export function encodeWelcomeMessage(welcome: Welcome): Uint8Array {
  return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome });
}

/** Body of RFC 9420's ratchet_tree extension (`optional<Node> ratchet_tree<V>`), trailing blanks stripped. */
export function encodeTreeBytes(tree: RatchetTree): Uint8Array {
  return encodeRatchetTree(stripBlankNodes(tree));
}

/** Sends `proposal` as a PrivateMessage; `data` is the session to keep alongside the new group state. */
export async function propose(
  ctx: MlsContext,
  session: GroupSession,
  data: SessionData,
  proposal: Proposal,
  what: string,
): Promise<{ state: GroupSession; message: Uint8Array; consumed: Consumed }> {
  const base = clientStateOf(ctx, session);
  return guarded(what, async () => {
    const result = await createProposal(base, false, proposal, ctx.cipherSuite);
    return {
      state: wrap({ ...data, group: groupStateOf(result.newState) }),
      message: encodeMlsMessage(result.message),
      consumed: result.consumed,
    };
  });
}

/** The next session after a commit moved `previous` to a new epoch. */
export function afterEpochChange(previous: SessionData, next: ClientState): GroupSession {
  return wrap({
    group: groupStateOf(next),
    // Copy: the old key schedule object belongs to the previous session.
    previousExporter: {
      epoch: previous.group.groupContext.epoch,
      secret: previous.group.keySchedule.exporterSecret.slice(),
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Creating and joining a 1:1 session (PROTOCOL.md §7)
// ---------------------------------------------------------------------------------------------

export interface CreatedSession {
  readonly state: GroupSession;
  /** MLSMessage(mls_welcome) bytes for the peer. */
  readonly welcome: Uint8Array;
  /** Body of RFC 9420's ratchet_tree extension (`optional<Node> ratchet_tree<V>`), InnerPayload key 4. */
  readonly ratchetTree: Uint8Array;
  readonly peer: Member;
  readonly consumed: Consumed;
}

export interface CreateOptions {
  /**
   * Unix seconds for the peer KeyPackage's lifetime check and our own leaf's lifetime. Defaults to
   * the system clock, which ts-mls 1.6.4 consults anyway when it adds the peer (sentByClient).
   */
  readonly now?: number;
  /** 32 bytes; random by default. */
  readonly groupId?: Uint8Array;
}

/**
 * Creates a group with us at leaf 0 (so we are the committer) and adds the peer's verified
 * KeyPackage. The Add commit needs no path (RFC 9420 §12.4), so nobody else receives it.
 */
export async function createOneToOne(
  ctx: MlsContext,
  self: SigningIdentity,
  peerKeyPackage: Uint8Array,
  opts: CreateOptions = {},
): Promise<CreatedSession> {
  checkIdentity(self);
  const now = unixNow(opts.now);
  const groupId = newGroupId(opts.groupId);
  const peerKp = decodeKeyPackageMessage(peerKeyPackage);
  await checkKeyPackage(ctx, peerKp, now);
  if (equalBytes(peerKp.leafNode.signaturePublicKey, self.signingPublic)) {
    throw new ProtocolError('cannot open a 1:1 session with ourselves');
  }

  return guarded('creating the 1:1 group', async () => {
    const initial = await createSoloGroup(ctx, self, groupId, now);
    const add: Proposal = { proposalType: 'add', add: { keyPackage: peerKp } };
    const result = await createCommit(
      { state: initial, cipherSuite: ctx.cipherSuite },
      { extraProposals: [add] },
    );
    if (result.welcome === undefined) throw new ProtocolError('adding the peer produced no Welcome');
    const members = membersOfTree(result.newState.ratchetTree);
    const peer = members.find((m) => m.leafIndex !== result.newState.privatePath.leafIndex);
    if (peer === undefined) throw new ProtocolError('peer missing from the new group');
    return {
      state: wrap({ group: groupStateOf(result.newState) }),
      welcome: encodeWelcomeMessage(result.welcome),
      ratchetTree: encodeTreeBytes(result.newState.ratchetTree),
      peer,
      consumed: result.consumed,
    };
  });
}

export interface StoredKeyPackage {
  readonly ref: Uint8Array;
  /** MLSMessage(mls_key_package) bytes. */
  readonly keyPackage: Uint8Array;
  /** From generateKeyPackage's `privateKeyPackage`. */
  readonly privateKeyPackage: Uint8Array;
}

/** Finds one of our KeyPackages by KeyPackageRef; undefined when we have none by that ref. */
export type KeyPackageLookup = (ref: Uint8Array) => Promise<StoredKeyPackage | undefined>;

export interface JoinOptions {
  /** Accepted member counts, inclusive. Default exactly 2 (a 1:1 Welcome, PROTOCOL.md §7). */
  readonly members?: { readonly min: number; readonly max: number };
  /**
   * Largest ratchet tree accepted, in nodes as listed on the wire (trailing blanks excluded, so n
   * leaves without holes are 2n − 1 nodes). Checked with the rest of tree-bounds.ts before any
   * signature on the tree is verified. Default 2047 for groups; a 1:1 tree is always 3 nodes.
   */
  readonly maxTreeNodes?: number;
}

export interface JoinedSession {
  readonly state: GroupSession;
  /** Which of our KeyPackages the Welcome consumed (PROTOCOL.md §4: publish a fresh bundle). */
  readonly consumedRef: Uint8Array;
  /** The GroupInfo signer's credential key: the key InnerPayload key 2 must equal (§6). */
  readonly groupInfoSignerKey: Uint8Array;
  readonly signerLeafIndex: number;
  readonly members: Member[];
}

export function decodeWelcomeMessage(bytes: Uint8Array): Welcome {
  let decoded;
  try {
    decoded = decodeMlsMessage(bytes, 0);
  } catch (e) {
    throw new CodecError('Welcome does not decode', { cause: e });
  }
  if (decoded === undefined || decoded[1] !== bytes.length) {
    throw new CodecError('Welcome does not decode');
  }
  const [msg] = decoded;
  if (msg.version !== 'mls10' || msg.wireformat !== 'mls_welcome') {
    throw new CodecError('not an MLS 1.0 Welcome');
  }
  return msg.welcome;
}

export function decodeTreeBytes(bytes: Uint8Array): RatchetTree {
  let decoded;
  try {
    decoded = decodeRatchetTree(bytes, 0);
  } catch (e) {
    throw new CodecError('ratchet tree does not decode', { cause: e });
  }
  if (decoded === undefined || decoded[1] !== bytes.length) {
    throw new CodecError('ratchet tree does not decode');
  }
  return decoded[0];
}

async function findOurKeyPackage(
  welcome: Welcome,
  keyPackages: readonly StoredKeyPackage[] | KeyPackageLookup,
): Promise<StoredKeyPackage | undefined> {
  for (const secret of welcome.secrets) {
    const found =
      typeof keyPackages === 'function'
        ? await keyPackages(secret.newMember)
        : keyPackages.find((kp) => equalBytes(kp.ref, secret.newMember));
    if (found !== undefined && equalBytes(found.ref, secret.newMember)) return found;
  }
  return undefined;
}

/** Opens the GroupInfo ourselves (RFC 9420 §12.4.3.1): ts-mls's join does not report the signer. */
async function openGroupInfo(
  ctx: MlsContext,
  welcome: Welcome,
  ref: Uint8Array,
  priv: PrivateKeyPackage,
): Promise<GroupInfo> {
  const cs = ctx.cipherSuite;
  const initKey = await cs.hpke.importPrivateKey(priv.initPrivateKey);
  const secrets = await decryptGroupSecrets(initKey, ref, welcome, cs.hpke);
  if (secrets === undefined) throw new VerificationError('Welcome group secrets do not decode');
  try {
    if (secrets.psks.length > 0) throw new ProtocolError('Welcome requires pre-shared keys');
    // No PSKs: psk_secret is Nh zero bytes (RFC 9420 §8.4).
    const info = await decryptGroupInfo(welcome, secrets.joinerSecret, new Uint8Array(cs.kdf.size), cs);
    if (info === undefined) throw new VerificationError('Welcome GroupInfo does not decrypt');
    return info;
  } finally {
    wipe(secrets.joinerSecret);
    wipe(secrets.pathSecret);
  }
}

/**
 * PROTOCOL.md §7/§9: the GroupInfo signer must be the committer, the lowest occupied leaf before its
 * commit. An Add takes the leftmost blank leaf (RFC 9420 §12.1.1), and once a hand-over has left
 * leaves blank below the committer, invitees land there and the new tree's lowest leaf is one of
 * them. So the signer passes when it is the lowest leaf, or when every occupied leaf below it can be
 * one this commit added: a leaf still as its KeyPackage made it (source key_package), and no more of
 * them than the Welcome has entries. A committer's own leaf stops looking like that once it has
 * committed with a path, which a hand-over commit always has and createGroup does at once.
 */
function signedByCommitter(tree: RatchetTree, signer: number, addedByCommit: number): boolean {
  let below = 0;
  for (let nodeIndex = 0; nodeIndex < signer * 2 && nodeIndex < tree.length; nodeIndex += 2) {
    const node = tree[nodeIndex];
    if (node === undefined) continue;
    if (node.nodeType !== 'leaf' || node.leaf.leafNodeSource !== 'key_package') return false;
    below++;
  }
  return below <= addedByCommit;
}

/**
 * Joins from a Welcome addressed to one of our KeyPackages. Checks (PROTOCOL.md §7, §9): suite
 * 0x0001, group id of 32 bytes, member count, every leaf's identity derives from its key, the
 * GroupInfo signer is the committer (see signedByCommitter); ts-mls verifies the rest of RFC 9420
 * §12.4.3.1 (signature, confirmation tag, tree hash, parent hashes, leaf signatures).
 */
export async function joinFromWelcome(
  ctx: MlsContext,
  welcomeBytes: Uint8Array,
  ratchetTree: Uint8Array | undefined,
  keyPackages: readonly StoredKeyPackage[] | KeyPackageLookup,
  opts: JoinOptions = {},
): Promise<JoinedSession> {
  const bounds = opts.members ?? { min: 2, max: 2 };
  const welcome = decodeWelcomeMessage(welcomeBytes);
  if (welcome.cipherSuite !== RELAY_CIPHERSUITE) {
    throw new ProtocolError('Welcome cipher suite is not 0x0001');
  }
  const stored = await findOurKeyPackage(welcome, keyPackages);
  if (stored === undefined) throw new ProtocolError('Welcome is not for any of our KeyPackages');
  const keyPackage: KeyPackage = decodeKeyPackageMessage(stored.keyPackage);
  const priv = decodePrivateKeyPackage(stored.privateKeyPackage);

  return guarded('joining from a Welcome', async () => {
    const info = await openGroupInfo(ctx, welcome, stored.ref, priv);
    const context = info.groupContext;
    if (context.groupId.length !== GROUP_ID_LENGTH) {
      throw new ProtocolError('Welcome group id is not 32 bytes');
    }
    if (context.cipherSuite !== RELAY_CIPHERSUITE) {
      throw new ProtocolError('GroupInfo cipher suite is not 0x0001');
    }
    const tree =
      ratchetTreeFromExtension(info) ??
      (ratchetTree !== undefined ? decodeTreeBytes(ratchetTree) : undefined);
    if (tree === undefined) throw new ProtocolError('Welcome comes without a ratchet tree');
    assertTreeBounds(tree, welcomeTreeLimits(bounds.max, opts.maxTreeNodes));
    const members = membersOfTree(tree);
    if (members.length < bounds.min || members.length > bounds.max) {
      throw new GroupLimitError(`Welcome group has ${members.length} members`);
    }
    for (let nodeIndex = 0; nodeIndex < tree.length; nodeIndex += 2) {
      const node = tree[nodeIndex];
      if (
        node?.nodeType === 'leaf' &&
        !credentialIsValid(node.leaf.credential, node.leaf.signaturePublicKey)
      ) {
        throw new VerificationError('a leaf identity does not derive from its key');
      }
    }
    // A 1:1 Welcome never adds anyone below its creator, so it keeps the strict rule.
    const addedBelowSigner = bounds.max > 2 ? welcome.secrets.length : 0;
    if (!signedByCommitter(tree, info.signer, addedBelowSigner)) {
      throw new ProtocolError('GroupInfo signer is not the committer (lowest occupied leaf)');
    }
    const signerNode = tree[info.signer * 2];
    if (signerNode?.nodeType !== 'leaf') throw new ProtocolError('GroupInfo signer leaf is blank');

    const state = await joinGroup(
      welcome,
      keyPackage,
      priv,
      emptyPskIndex,
      ctx.cipherSuite,
      tree,
      undefined,
      ctx.clientConfig,
    );
    return {
      state: wrap({ group: groupStateOf(state) }),
      consumedRef: stored.ref,
      groupInfoSignerKey: signerNode.leaf.signaturePublicKey,
      signerLeafIndex: info.signer,
      members,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Application messages
// ---------------------------------------------------------------------------------------------

export interface EncryptedMessage {
  readonly state: GroupSession;
  /** MLSMessage(mls_private_message) bytes. */
  readonly message: Uint8Array;
  /** The epoch the message is framed in (the access-token epoch, PROTOCOL.md §5). */
  readonly epoch: bigint;
  readonly consumed: Consumed;
}

export async function encryptApplication(
  ctx: MlsContext,
  session: GroupSession,
  plaintext: Uint8Array,
): Promise<EncryptedMessage> {
  const data = unwrap(session);
  const base = clientStateOf(ctx, session);
  return guarded('encrypting an application message', async () => {
    // ts-mls refuses while proposals are pending; PROTOCOL.md §9 says they must not block
    // application messages, so they are set aside for the call and put back afterwards.
    const result = await createApplicationMessage(
      { ...base, unappliedProposals: {} },
      plaintext,
      ctx.cipherSuite,
    );
    return {
      state: wrap({
        ...data,
        group: { ...groupStateOf(result.newState), unappliedProposals: base.unappliedProposals },
      }),
      message: encodePrivateMlsMessage(result.privateMessage),
      epoch: base.groupContext.epoch,
      consumed: result.consumed,
    };
  });
}

export type ProposalKind = 'add' | 'remove' | 'update';

export interface ProcessOptions {
  /** Proposal types accepted in proposals and commits. Default ['update'] (1:1, PROTOCOL.md §7). */
  readonly allowedProposals?: readonly ProposalKind[];
}

export interface ProcessedMessage {
  readonly state: GroupSession;
  readonly kind: MlsContentType;
  /** Application data, for kind 'application'. */
  readonly plaintext?: Uint8Array;
  /** The MLS-authenticated sender (RFC 9420 §6.3.2 sender data, verified by its signature). */
  readonly sender: Member;
  /** The epoch the message was framed in; for a commit, the epoch before it. */
  readonly epoch: bigint;
  readonly consumed: Consumed;
}

/** What ts-mls asks about a proposal or commit before applying it. */
export type Incoming = Parameters<IncomingMessageCallback>[0];

/**
 * A session's admission rule for handshake messages: the reason to refuse, or undefined. Runs
 * inside ts-mls's synchronous callback, so it can only look at the tree, never verify signatures.
 */
export type Admission = (incoming: Incoming, tree: RatchetTree) => RelayError | undefined;

/** One PrivateMessage taken apart and applied to a copy of the session; internal to mls/. */
export interface Received {
  readonly data: SessionData;
  readonly pm: PrivateMessage;
  readonly sender: Member;
  readonly contentType: MlsContentType;
  readonly result: ProcessMessageResult;
  /** A commit's proposals (by reference and by value), or the single proposal received. */
  readonly proposals: readonly ProposalWithSender[];
  /** The commit removes us; `result.newState` is then not a usable state (the commit is not applied). */
  readonly removedSelf: boolean;
}

/**
 * Decrypts and applies one PrivateMessage under `admit`, shared by 1:1 and group processing so
 * that both install our pending Update the same way and apply the same checks on proposals.
 */
export async function receivePrivateMessage(
  ctx: MlsContext,
  session: GroupSession,
  message: Uint8Array | DecodedMessage,
  admit: Admission,
): Promise<Received> {
  const { pm, memo } = parsedMessage(message);
  const peeked = await peekPrivateMessage(ctx, session, pm, memo);
  const data = unwrap(session);
  const group = data.group;
  const ownLeaf = group.privatePath.leafIndex;
  if (peeked.leafIndex === ownLeaf) throw new OwnMessageError('message was sent by ourselves');
  if (peeked.contentType !== 'application' && pm.epoch !== group.groupContext.epoch) {
    throw new ProtocolError('handshake message from a past epoch');
  }

  let refusal: RelayError | undefined;
  let removedSelf = false;
  let proposals: readonly ProposalWithSender[] = [];
  const policy: IncomingMessageCallback = (incoming) => {
    proposals = incoming.kind === 'commit' ? incoming.proposals : [incoming.proposal];
    refusal = admit(incoming, group.ratchetTree);
    if (refusal !== undefined) return 'reject';
    // ts-mls 1.6.4 sees its own removal only when our leaf is blank after the commit, and an Add
    // in the same commit refills the leftmost blank leaf, which may be ours: it then tries the
    // path, finds no key and throws. The commit's signature and proposals are verified by now,
    // so stop here and report the removal ourselves.
    removedSelf = incoming.kind === 'commit' && removedLeaves(incoming.proposals).includes(ownLeaf);
    return removedSelf ? 'reject' : 'accept';
  };

  const attempt = async (state: ClientState) => {
    refusal = undefined;
    removedSelf = false;
    // The SenderData the peek decrypted is answered from its memo, not decrypted again.
    const cs = memo.replaying(ctx.cipherSuite);
    const result = await processPrivateMessage(state, pm, makePskIndex(state, {}), cs, policy);
    if (result.kind === 'newState' && result.actionTaken === 'reject' && !removedSelf) {
      throw refusal ?? new ProtocolError('message rejected by session policy');
    }
    return result;
  };

  const base = clientStateOf(ctx, session);
  const apply = async () => {
    const pending = data.pendingUpdate;
    if (peeked.contentType !== 'commit' || pending === undefined) return attempt(base);
    // Our Update proposal replaced our leaf's encryption key in the proposal only; if this commit
    // carries it, the path secret is encrypted to the new key (RFC 9420 §12.1.2, §7.6). Try that
    // first and keep it only if the resulting tree really holds our new key; otherwise the commit
    // did not include our proposal and the old key applies.
    const ownNode = ownLeaf * 2;
    const withNewKey: ClientState = {
      ...base,
      privatePath: {
        ...base.privatePath,
        privateKeys: { ...base.privatePath.privateKeys, [ownNode]: pending.hpkePrivateKey },
      },
    };
    try {
      const r = await attempt(withNewKey);
      if (removedSelf) return r;
      const leaf = r.newState.ratchetTree[ownNode];
      if (leaf?.nodeType === 'leaf' && equalBytes(leaf.leaf.hpkePublicKey, pending.hpkePublicKey)) {
        return r;
      }
    } catch (e) {
      if (refusal !== undefined) throw e;
    }
    return attempt(base);
  };

  // The policy rejects every commit removing our leaf, so ts-mls never reaches its own
  // removedFromGroup state here; `removedSelf` is the only signal.
  const result = await guarded('processing an MLS message', async () => {
    const r = await apply().finally(() => memo.wipe());
    // Inside guarded: these verify signatures on keys taken from the message.
    if (peeked.contentType === 'proposal') {
      const [received] = proposals;
      if (received !== undefined) await verifyProposal(ctx, group, received);
    } else if (peeked.contentType === 'commit' && !removedSelf) {
      keepIdentities(group.ratchetTree, r.newState.ratchetTree, proposals);
    }
    return r;
  });
  return {
    data,
    pm,
    sender: { leafIndex: peeked.leafIndex, identityKey: peeked.identityKey, userId: peeked.userId },
    contentType: peeked.contentType,
    result,
    proposals,
    removedSelf,
  };
}

/**
 * Checks ts-mls leaves to commit time, done on receipt instead: a proposal that every member
 * stores but the committer cannot commit would stall the group. Lifetimes are left out on purpose:
 * receivers' clocks differ, and one that refused what the committer accepted could not follow the
 * commit referencing it. The committer checks lifetimes when it commits.
 */
async function verifyProposal(
  ctx: MlsContext,
  group: GroupState,
  received: ProposalWithSender,
): Promise<void> {
  const proposal = received.proposal;
  if (proposal.proposalType === 'add') {
    const kp = proposal.add.keyPackage;
    // checkKeyPackage judged at a moment inside the package's own lifetime: every check but that one.
    await checkKeyPackage(ctx, kp, Number(kp.leafNode.lifetime.notBefore));
  } else if (proposal.proposalType === 'update') {
    const leafIndex = received.senderLeafIndex;
    if (leafIndex === undefined) throw new ProtocolError('Update proposal without a member sender');
    const ok = await verifyLeafNodeSignature(
      proposal.update.leafNode,
      group.groupContext.groupId,
      leafIndex,
      ctx.cipherSuite.signature,
    );
    if (!ok) throw new VerificationError('Update leaf node signature does not verify');
    const leaf = proposal.update.leafNode;
    if (!credentialIsValid(leaf.credential, leaf.signaturePublicKey)) {
      throw new VerificationError('Update credential does not derive from its signature key');
    }
    const current = group.ratchetTree[leafIndex * 2];
    if (
      current?.nodeType !== 'leaf' ||
      !equalBytes(current.leaf.signaturePublicKey, leaf.signaturePublicKey)
    ) {
      throw new ProtocolError("an Update may not change the member's identity key");
    }
  }
}

/**
 * A member's identity is its credential key (PROTOCOL.md §2), so no commit may swap the key at a
 * leaf it does not remove: neither an Update nor the committer's own path leaf may change it.
 */
function keepIdentities(
  before: RatchetTree,
  after: RatchetTree,
  proposals: readonly ProposalWithSender[],
): void {
  const removed = new Set(removedLeaves(proposals));
  for (let nodeIndex = 0; nodeIndex < before.length; nodeIndex += 2) {
    const old = before[nodeIndex];
    if (old?.nodeType !== 'leaf' || removed.has(nodeIndex / 2)) continue;
    const now = after[nodeIndex];
    if (now?.nodeType !== 'leaf' || !equalBytes(now.leaf.signaturePublicKey, old.leaf.signaturePublicKey)) {
      throw new ProtocolError(`commit changes the identity key at leaf ${nodeIndex / 2}`);
    }
  }
}

function removedLeaves(proposals: readonly ProposalWithSender[]): number[] {
  const leaves: number[] = [];
  for (const p of proposals) {
    if (p.proposal.proposalType === 'remove') leaves.push(p.proposal.remove.removed);
  }
  return leaves;
}

/** Who a commit removed (from the tree before it) and added (found in the tree after it). */
export function membershipChange(
  before: RatchetTree,
  after: RatchetTree,
  proposals: readonly ProposalWithSender[],
): { added: Member[]; removed: Member[] } {
  // Only the leaves involved are looked at: no user id is derived for anyone else.
  const removed: Member[] = [];
  for (const leaf of new Set(removedLeaves(proposals))) {
    const member = memberAt(before, leaf);
    if (member !== undefined) removed.push(member);
  }
  const added: Member[] = [];
  for (const p of proposals) {
    if (p.proposal.proposalType !== 'add') continue;
    const member = memberWithKey(after, p.proposal.add.keyPackage.leafNode.signaturePublicKey);
    if (member !== undefined && !added.some((m) => m.leafIndex === member.leafIndex)) added.push(member);
  }
  return { added, removed };
}

export function isAllowed(proposal: Proposal, allowed: readonly ProposalKind[]): boolean {
  return (allowed as readonly string[]).includes(String(proposal.proposalType));
}

/**
 * Decrypts and applies one PrivateMessage. The caller recognises its own messages and redeliveries
 * by digest first: ts-mls reports them with the same error as a replay or a too-old message.
 * Throws VerificationError (does not authenticate) or ProtocolError (authentic but not allowed:
 * wrong group, future epoch, commit by a non-committer, disallowed proposal…). For groups use
 * processGroupMessage (group.ts), which also reports membership changes and our removal.
 */
export async function processMessage(
  ctx: MlsContext,
  session: GroupSession,
  message: Uint8Array | DecodedMessage,
  opts: ProcessOptions = {},
): Promise<ProcessedMessage> {
  const allowed = opts.allowedProposals ?? ['update'];
  const admit: Admission = (incoming, tree) => {
    const committer = committerLeafIndex(tree);
    if (incoming.kind === 'commit') {
      if (incoming.senderLeafIndex !== committer) {
        return new ProtocolError('commit from a member that is not the committer');
      }
      if (incoming.proposals.some((p) => !isAllowed(p.proposal, allowed))) {
        return new ProtocolError('commit carries a proposal type this session does not accept');
      }
    } else if (!isAllowed(incoming.proposal.proposal, allowed)) {
      return new ProtocolError('proposal type not accepted in this session');
    } else if (incoming.proposal.senderLeafIndex === committer) {
      return new ProtocolError('the committer updates by committing, not by proposing');
    }
    return undefined;
  };
  const got = await receivePrivateMessage(ctx, session, message, admit);
  const { data, result } = got;
  if (got.removedSelf) {
    throw new ProtocolError('the commit removes us from the group; use processGroupMessage for groups');
  }
  if (result.kind === 'applicationMessage') {
    return {
      state: wrap({ ...data, group: groupStateOf(result.newState) }),
      kind: 'application',
      plaintext: result.message,
      sender: got.sender,
      epoch: got.pm.epoch,
      consumed: result.consumed,
    };
  }
  const next =
    got.contentType === 'commit'
      ? afterEpochChange(data, result.newState)
      : wrap({ ...data, group: groupStateOf(result.newState) });
  return {
    state: next,
    kind: got.contentType,
    sender: got.sender,
    epoch: got.pm.epoch,
    consumed: result.consumed,
  };
}

// ---------------------------------------------------------------------------------------------
// Key updates (PROTOCOL.md §7, §9 "Key refresh")
// ---------------------------------------------------------------------------------------------

export interface ProposedUpdate {
  readonly state: GroupSession;
  /** MLSMessage(mls_private_message) carrying the Update proposal. */
  readonly message: Uint8Array;
  readonly consumed: Consumed;
}

/**
 * The non-committer's key refresh: an Update proposal with a fresh leaf encryption key. The new
 * private key is kept in the session until the committer's next commit settles it.
 */
export async function proposeUpdate(ctx: MlsContext, session: GroupSession): Promise<ProposedUpdate> {
  const data = unwrap(session);
  const group = data.group;
  const leafIndex = group.privatePath.leafIndex;
  if (committerLeafIndex(group.ratchetTree) === leafIndex) {
    throw new ProtocolError('the committer refreshes keys by committing, not by proposing');
  }
  if (data.pendingUpdate?.epoch === group.groupContext.epoch) {
    throw new ProtocolError('an Update proposal is already pending in this epoch');
  }
  const node = group.ratchetTree[leafIndex * 2];
  if (node?.nodeType !== 'leaf') throw new ProtocolError('own leaf is blank');
  const own = node.leaf;
  const cs = ctx.cipherSuite;

  return guarded('proposing an update', async () => {
    const pair = await cs.hpke.generateKeyPair();
    const hpkePrivateKey = await cs.hpke.exportPrivateKey(pair.privateKey);
    const hpkePublicKey = await cs.hpke.exportPublicKey(pair.publicKey);
    // RFC 9420 §7.2: an update LeafNode signs LeafNodeTBS including group_id and leaf_index.
    const tbs = encodeLeafNodeTBS({
      hpkePublicKey,
      signaturePublicKey: own.signaturePublicKey,
      credential: own.credential,
      capabilities: own.capabilities,
      leafNodeSource: 'update',
      extensions: own.extensions,
      groupId: group.groupContext.groupId,
      leafIndex,
    });
    const leafNode: LeafNodeUpdate = {
      hpkePublicKey,
      signaturePublicKey: own.signaturePublicKey,
      credential: own.credential,
      capabilities: own.capabilities,
      leafNodeSource: 'update',
      extensions: own.extensions,
      signature: await signWithLabel(group.signaturePrivateKey, 'LeafNodeTBS', tbs, cs.signature),
    };
    return propose(
      ctx,
      session,
      { ...data, pendingUpdate: { epoch: group.groupContext.epoch, hpkePrivateKey, hpkePublicKey } },
      { proposalType: 'update', update: { leafNode } },
      'proposing an update',
    );
  });
}

export interface CommittedState {
  readonly state: GroupSession;
  /** MLSMessage(mls_private_message) carrying the Commit. Already merged into `state`. */
  readonly commit: Uint8Array;
  /** The epoch the commit is framed in (the one before it). */
  readonly epoch: bigint;
  readonly consumed: Consumed;
}

/**
 * The committer commits every pending proposal, always with a path; with none pending this is the
 * committer's own key refresh (an empty commit, RFC 9420 §12.4).
 */
export async function commitPending(ctx: MlsContext, session: GroupSession): Promise<CommittedState> {
  const data = unwrap(session);
  const group = data.group;
  if (committerLeafIndex(group.ratchetTree) !== group.privatePath.leafIndex) {
    throw new ProtocolError('only the committer (lowest occupied leaf) commits');
  }
  const base = clientStateOf(ctx, session);
  return guarded('committing', async () => {
    const result = await createCommit({ state: base, cipherSuite: ctx.cipherSuite });
    return {
      state: afterEpochChange(data, result.newState),
      commit: encodeMlsMessage(result.commit),
      epoch: group.groupContext.epoch,
      consumed: result.consumed,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Exporter (RFC 9420 §8.5)
// ---------------------------------------------------------------------------------------------

/**
 * MLS-Exporter(label, context, length) for the current epoch, or for the epoch just before it
 * (kept by this engine for access tokens, PROTOCOL.md §5). Other epochs: ProtocolError.
 */
export async function exportSecret(
  ctx: MlsContext,
  session: GroupSession,
  label: string,
  context: Uint8Array,
  length: number,
  epoch?: bigint,
): Promise<Uint8Array> {
  if (!Number.isInteger(length) || length < 1 || length > 255 * ctx.cipherSuite.kdf.size) {
    throw new ArgumentError('exporter length out of range');
  }
  const data = unwrap(session);
  const current = data.group.groupContext.epoch;
  let secret: Uint8Array;
  if (epoch === undefined || epoch === current) secret = data.group.keySchedule.exporterSecret;
  else if (data.previousExporter !== undefined && data.previousExporter.epoch === epoch) {
    secret = data.previousExporter.secret;
  } else throw new ProtocolError(`no exporter secret kept for epoch ${epoch}`);
  // RFC 9420 §8.5: ExpandWithLabel(DeriveSecret(exporter_secret, label), "exported", Hash(context)).
  return mlsExporter(secret, label, context, length, ctx.cipherSuite);
}
