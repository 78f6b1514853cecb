/**
 * N-way groups (PROTOCOL.md §9) on the same engine as 1:1 sessions: one committer (the lowest
 * occupied leaf) commits; everyone else proposes Add, Remove and Update. Pure functions over
 * GroupSession like engine.ts, with the same `consumed` contract.
 */
import { createCommit, encodeMlsMessage, makePskIndex } from 'ts-mls';
import type {
  ClientState,
  KeyPackage,
  MLSMessage,
  Proposal,
  ProposalWithSender,
  RatchetTree,
  Welcome,
} from 'ts-mls';
import { addHistoricalReceiverData, applyProposals, nextEpochContext } from 'ts-mls/clientState.js';
import { createGroupInfo } from 'ts-mls/createCommit.js';
import { createConfirmationTag, createContentCommitSignature } from 'ts-mls/framedContent.js';
import { makeKeyPackageRef } from 'ts-mls/keyPackage.js';
import { initializeEpoch } from 'ts-mls/keySchedule.js';
import { protect } from 'ts-mls/messageProtection.js';
import { getCommitSecret, pathToPathSecrets } from 'ts-mls/pathSecrets.js';
import type { ProposalOrRef } from 'ts-mls/proposalOrRefType.js';
import { mergePrivateKeyPaths, toPrivateKeyPath, updateLeafKey } from 'ts-mls/privateKeyPath.js';
import { createSecretTree } from 'ts-mls/secretTree.js';
import { treeHashRoot } from 'ts-mls/treeHash.js';
import { directPath, leafToNodeIndex, leafWidth, toLeafIndex, toNodeIndex } from 'ts-mls/treemath.js';
import { createUpdatePath, firstCommonAncestor } from 'ts-mls/updatePath.js';
import { encryptGroupInfo, encryptGroupSecrets } from 'ts-mls/welcome.js';
import { equalBytes, toHex, wipe } from '../bytes.js';
import { ArgumentError, ProtocolError, RelayError, VerificationError } from '../errors.js';
import { credentialIsValid, userIdFromKey } from './auth.js';
import type { MlsContext } from './context.js';
import type { DecodedMessage } from './sender.js';
import {
  afterEpochChange,
  createSoloGroup,
  encodeTreeBytes,
  encodeWelcomeMessage,
  guarded,
  isAllowed,
  membershipChange,
  newGroupId,
  propose,
  receivePrivateMessage,
  unixNow,
  type Admission,
  type Consumed,
  type ProposalKind,
} from './engine.js';
import {
  checkIdentity,
  checkKeyPackage,
  decodeKeyPackageMessage,
  type SigningIdentity,
} from './keypackage.js';
import {
  clientStateOf,
  committerLeafIndex,
  groupStateOf,
  memberByIdentityKey,
  nextCommitterLeafIndex,
  unwrap,
  wrap,
  type GroupSession,
  type Member,
  type SessionData,
} from './state.js';

const GROUP_PROPOSALS: readonly ProposalKind[] = ['add', 'remove', 'update'];

// ---------------------------------------------------------------------------------------------
// Creating a group
// ---------------------------------------------------------------------------------------------

export interface GroupCreateOptions {
  /** 32 bytes; random by default. */
  readonly groupId?: Uint8Array;
  /** Unix seconds for our own leaf's lifetime; the system clock by default. */
  readonly now?: number;
}

export interface CreatedGroup {
  readonly state: GroupSession;
  readonly consumed: Consumed;
}

/**
 * A group of one: us at leaf 0, so we are its committer. Add members with commitGroup. The group
 * starts at epoch 1: an empty commit right away replaces our KeyPackage leaf with a committed one,
 * which joiners rely on to tell the committer from freshly added leaves (joinFromWelcome).
 */
export async function createGroup(
  ctx: MlsContext,
  self: SigningIdentity,
  opts: GroupCreateOptions = {},
): Promise<CreatedGroup> {
  checkIdentity(self);
  const groupId = newGroupId(opts.groupId);
  return guarded('creating a group', async () => {
    const state = await createSoloGroup(ctx, self, groupId, unixNow(opts.now));
    const first = await createCommit({ state, cipherSuite: ctx.cipherSuite });
    return { state: wrap({ group: groupStateOf(first.newState) }), consumed: first.consumed };
  });
}

// ---------------------------------------------------------------------------------------------
// Proposals
// ---------------------------------------------------------------------------------------------

export interface ProposedChange {
  readonly state: GroupSession;
  /** MLSMessage(mls_private_message) carrying the proposal. */
  readonly message: Uint8Array;
  readonly consumed: Consumed;
}

export interface PendingProposal {
  /** Hex ProposalRef (RFC 9420 §5.2), the handle commitGroup's `exclude` takes. */
  readonly ref: string;
  readonly kind: ProposalKind;
  readonly senderLeaf: number;
  /** The invitee, for kind 'add'. */
  readonly add?: { readonly identityKey: Uint8Array; readonly userId: Uint8Array };
  /** The leaf to remove, for kind 'remove'. */
  readonly removeLeaf?: number;
}

function activeData(session: GroupSession): SessionData {
  const data = unwrap(session);
  if (data.group.groupActiveState.kind !== 'active') throw new ProtocolError('group is not active');
  return data;
}

/**
 * Proposes adding the owner of a KeyPackage (MLSMessage bytes), which must pass the KeyBundle
 * checks (PROTOCOL.md §4) and belong to someone who is not a member yet.
 */
export async function proposeAdd(
  ctx: MlsContext,
  session: GroupSession,
  keyPackage: Uint8Array,
  opts: { readonly now?: number } = {},
): Promise<ProposedChange> {
  const data = activeData(session);
  const kp = decodeKeyPackageMessage(keyPackage);
  await checkKeyPackage(ctx, kp, unixNow(opts.now));
  if (memberByIdentityKey(session, kp.leafNode.signaturePublicKey) !== undefined) {
    throw new ProtocolError('the invitee is already a member');
  }
  return propose(ctx, session, data, { proposalType: 'add', add: { keyPackage: kp } }, 'proposing an add');
}

/** Proposes removing the member at `leafIndex`; our own leaf is how a member leaves (§9). */
export async function proposeRemove(
  ctx: MlsContext,
  session: GroupSession,
  leafIndex: number,
): Promise<ProposedChange> {
  const data = activeData(session);
  if (!Number.isSafeInteger(leafIndex) || leafIndex < 0) throw new ArgumentError('leaf index out of range');
  if (data.group.ratchetTree[leafIndex * 2]?.nodeType !== 'leaf') {
    throw new ProtocolError(`leaf ${leafIndex} is blank`);
  }
  return propose(
    ctx,
    session,
    data,
    { proposalType: 'remove', remove: { removed: leafIndex } },
    'proposing a remove',
  );
}

function hexRef(base64Ref: string): string {
  return Buffer.from(base64Ref, 'base64').toString('hex');
}

function describeProposal(ref: string, p: ProposalWithSender): PendingProposal | undefined {
  const senderLeaf = p.senderLeafIndex;
  // Only members' PrivateMessages are ever accepted, so a sender is always known.
  if (senderLeaf === undefined) return undefined;
  const proposal = p.proposal;
  switch (proposal.proposalType) {
    case 'add': {
      const identityKey = proposal.add.keyPackage.leafNode.signaturePublicKey;
      return { ref, kind: 'add', senderLeaf, add: { identityKey, userId: userIdFromKey(identityKey) } };
    }
    case 'remove':
      return { ref, kind: 'remove', senderLeaf, removeLeaf: proposal.remove.removed };
    case 'update':
      return { ref, kind: 'update', senderLeaf };
    default:
      return undefined;
  }
}

/** Proposals received or sent in this epoch and not yet committed, in arrival order. */
export function pendingProposals(session: GroupSession): PendingProposal[] {
  const out: PendingProposal[] = [];
  for (const [ref, p] of Object.entries(unwrap(session).group.unappliedProposals)) {
    const described = describeProposal(hexRef(ref), p);
    if (described !== undefined) out.push(described);
  }
  return out;
}

/**
 * True when we should propose an Update to clear a stale parent node: a non-blank node on our
 * direct path that is off the committer's, which happens when a newcomer took a blank leaf below
 * the committer and became committer itself (Adds fill the leftmost blank leaf). Adds under such a
 * node would leave unmerged leaves that ts-mls 1.6.4 joiners refuse (commitGroup then throws);
 * applying an Update blanks the proposer's whole direct path. Only the lowest member under the
 * stale node answers, so one Update suffices.
 */
export function needsPathRefresh(session: GroupSession): boolean {
  const group = unwrap(session).group;
  const tree = group.ratchetTree;
  const committer = committerLeafIndex(tree);
  if (committer === undefined) return false;
  const width = leafWidth(tree.length);
  const committerPath = new Set<number>(directPath(leafToNodeIndex(toLeafIndex(committer)), width));
  const ownNode = leafToNodeIndex(toLeafIndex(group.privatePath.leafIndex));
  for (const node of directPath(ownNode, width)) {
    if (tree[node]?.nodeType !== 'parent' || committerPath.has(node)) continue;
    // The leaves under a node at level k are node indices node - (2^k - 1) … node + (2^k - 1).
    for (let n = node - (levelSpan(node) - 1); n < ownNode; n += 2) {
      if (tree[n]?.nodeType === 'leaf') return false;
    }
    return true;
  }
  return false;
}

/** 2^k for a node at level k, k being the number of trailing one bits of its index (RFC 9420 App. C). */
function levelSpan(node: number): number {
  const inverted = ~node;
  return inverted & -inverted;
}

// ---------------------------------------------------------------------------------------------
// Committing
// ---------------------------------------------------------------------------------------------

export interface GroupCommitOptions {
  /** KeyPackage MLSMessages to add by value; each must pass the KeyBundle checks (§4). */
  readonly adds?: readonly Uint8Array[];
  /** Leaves to remove by value. */
  readonly removes?: readonly number[];
  /** Hex refs (PendingProposal.ref) of pending proposals to leave out. */
  readonly exclude?: readonly string[];
  /** Unix seconds for KeyPackage lifetimes; the system clock by default. */
  readonly now?: number;
}

export interface GroupCommit {
  readonly state: GroupSession;
  /** MLSMessage(mls_private_message) carrying the Commit. Already merged into `state`. */
  readonly commit: Uint8Array;
  /** MLSMessage(mls_welcome) for everyone added; absent when nobody was. */
  readonly welcome?: Uint8Array;
  /** Body of RFC 9420's ratchet_tree extension for the new epoch, InnerPayload key 4. */
  readonly ratchetTree: Uint8Array;
  /** The epoch the commit is framed in (the one before it). */
  readonly epoch: bigint;
  readonly added: Member[];
  readonly removed: Member[];
  readonly consumed: Consumed;
}

/** HPKE keys in the tree: an added leaf repeating one makes the tree invalid for joiners. */
function treeHpkeKeys(tree: RatchetTree): Set<string> {
  const keys = new Set<string>();
  for (const node of tree) {
    if (node?.nodeType === 'leaf') keys.add(toHex(node.leaf.hpkePublicKey));
    else if (node?.nodeType === 'parent') keys.add(toHex(node.parent.hpkePublicKey));
  }
  return keys;
}

/**
 * Commits every pending proposal not excluded, plus `adds` and `removes` by value, in one commit
 * (PROTOCOL.md §9). Pending proposals that could not be committed are left out rather than failing
 * the set: Adds that do not verify now, of members (unless removed in the same commit) or repeated;
 * Removes of blank or already removed leaves; Updates of removed leaves, repeated or our own (our
 * path refreshes our leaf anyway). By-value Adds that do not verify throw. Only the committer may
 * commit, or the next-lowest leaf when a pending Remove of the committer is committed (hand-over).
 *
 * Every commit carries an UpdatePath: ts-mls 1.6.4 adds one whenever RFC 9420 §12.4 requires it,
 * and commitWithPath supplies it for sets of Adds only, where ts-mls would leave it out.
 */
export async function commitGroup(
  ctx: MlsContext,
  session: GroupSession,
  opts: GroupCommitOptions = {},
): Promise<GroupCommit> {
  const data = activeData(session);
  const group = data.group;
  const tree = group.ratchetTree;
  const ownLeaf = group.privatePath.leafIndex;
  const committer = committerLeafIndex(tree);
  const excluded = new Set(opts.exclude ?? []);
  const occupied = (leaf: number): boolean => tree[leaf * 2]?.nodeType === 'leaf';

  const pending = Object.entries(group.unappliedProposals).filter(([ref]) => !excluded.has(hexRef(ref)));
  const kept: Record<string, ProposalWithSender> = {};
  const removing = new Set<number>();
  let ownRemovalPending = false;
  for (const [ref, p] of pending) {
    if (p.proposal.proposalType !== 'remove') continue;
    const leaf = p.proposal.remove.removed;
    if (leaf === ownLeaf) ownRemovalPending = true;
    if (leaf === ownLeaf || !occupied(leaf) || removing.has(leaf)) continue;
    removing.add(leaf);
    kept[ref] = p;
  }

  // Nobody commits its own Remove (RFC 9420 §12.2). The committer with one pending is leaving,
  // or is being replaced, and must leave the commit to the next committer; a hand-over committer
  // with one pending still takes over, and the Remove can be proposed again next epoch.
  if (ownRemovalPending && ownLeaf === committer) {
    throw new ProtocolError('a Remove of our own leaf is pending: the next committer must commit it');
  }
  const handOver = committer !== undefined && removing.has(committer);
  if (ownLeaf !== committer && !(handOver && ownLeaf === nextCommitterLeafIndex(tree))) {
    throw new ProtocolError('only the committer (lowest occupied leaf) commits');
  }

  const extraProposals: Proposal[] = [];
  for (const leaf of opts.removes ?? []) {
    if (!Number.isSafeInteger(leaf) || leaf < 0) throw new ArgumentError('leaf index out of range');
    if (leaf === ownLeaf) throw new ProtocolError('we cannot remove ourselves by committing');
    if (!occupied(leaf) || removing.has(leaf)) continue;
    removing.add(leaf);
    extraProposals.push({ proposalType: 'remove', remove: { removed: leaf } });
  }

  const updated = new Set<number>();
  for (const [ref, p] of pending) {
    if (p.proposal.proposalType !== 'update') continue;
    const leaf = p.senderLeafIndex;
    if (leaf === undefined || leaf === ownLeaf || removing.has(leaf) || updated.has(leaf)) continue;
    updated.add(leaf);
    kept[ref] = p;
  }

  const now = unixNow(opts.now);
  const hpkeKeys = treeHpkeKeys(tree);
  const adding: Uint8Array[] = [];
  // Returns whether the Add goes into the commit; throws the reason when it must not be skipped.
  const admitAdd = async (kp: KeyPackage): Promise<boolean> => {
    await checkKeyPackage(ctx, kp, now);
    const key = kp.leafNode.signaturePublicKey;
    const member = memberByIdentityKey(session, key);
    if (member !== undefined && !removing.has(member.leafIndex)) return false;
    if (adding.some((k) => equalBytes(k, key))) return false;
    const hpke = toHex(kp.leafNode.hpkePublicKey);
    if (hpkeKeys.has(hpke)) return false;
    hpkeKeys.add(hpke);
    adding.push(key);
    return true;
  };
  for (const [ref, p] of pending) {
    if (p.proposal.proposalType !== 'add') continue;
    const ok = await admitAdd(p.proposal.add.keyPackage).catch((e: unknown) => {
      if (e instanceof VerificationError) return false;
      throw e;
    });
    if (ok) kept[ref] = p;
  }
  for (const bytes of opts.adds ?? []) {
    const kp = decodeKeyPackageMessage(bytes);
    if (await admitAdd(kp)) extraProposals.push({ proposalType: 'add', add: { keyPackage: kp } });
  }

  const base = { ...clientStateOf(ctx, session), unappliedProposals: kept };
  const committed: ProposalWithSender[] = [
    ...Object.values(kept),
    ...extraProposals.map((proposal) => ({ proposal, senderLeafIndex: ownLeaf })),
  ];
  const addsOnly = committed.length > 0 && committed.every((p) => p.proposal.proposalType === 'add');
  return guarded('committing', async () => {
    const result = addsOnly
      ? await commitWithPath(ctx, base, extraProposals)
      : await createCommit({ state: base, cipherSuite: ctx.cipherSuite }, { extraProposals });
    if (result.commit.wireformat !== 'mls_private_message') {
      throw new ProtocolError('commit was not framed as a PrivateMessage');
    }
    const newTree = result.newState.ratchetTree;
    if (result.welcome !== undefined && !joinableByTsMls(newTree)) {
      throw new ProtocolError(
        'ts-mls 1.6.4 joiners would refuse the new tree (unmerged leaves); see commitGroup',
      );
    }
    const { added, removed } = membershipChange(tree, newTree, committed);
    return {
      state: afterEpochChange(data, result.newState),
      commit: encodeMlsMessage(result.commit),
      ...(result.welcome !== undefined ? { welcome: encodeWelcomeMessage(result.welcome) } : {}),
      ratchetTree: encodeTreeBytes(newTree),
      epoch: group.groupContext.epoch,
      added,
      removed,
      consumed: result.consumed,
    };
  });
}

interface BuiltCommit {
  readonly newState: ClientState;
  readonly commit: MLSMessage;
  readonly welcome: Welcome | undefined;
  readonly consumed: Uint8Array[];
}

/**
 * A member commit with an UpdatePath for a set ts-mls 1.6.4 would commit without one (Adds only,
 * RFC 9420 §12.4: the path is optional there). Built from ts-mls's own steps, in the order of
 * RFC 9420 §12.4.2, so receivers and joiners process it with the unmodified library. Two reasons
 * to always send a path: the committer's leaf and the group's path secrets are refreshed on every
 * commit (§9 "Key refresh"), and the path clears every unmerged leaf on the committer's direct
 * path, where ts-mls 1.6.4 joiners otherwise refuse trees that several Adds left behind (its
 * unmerged_leaves check wants identical lists all the way to the root, RFC 9420 §7.9.2 does not).
 */
async function commitWithPath(ctx: MlsContext, state: ClientState, extra: Proposal[]): Promise<BuiltCommit> {
  const cs = ctx.cipherSuite;
  const leaf = toLeafIndex(state.privatePath.leafIndex);
  const proposals: ProposalOrRef[] = [
    ...Object.keys(state.unappliedProposals).map((ref): ProposalOrRef => ({
      proposalOrRefType: 'reference',
      reference: new Uint8Array(Buffer.from(ref, 'base64')),
    })),
    ...extra.map((proposal): ProposalOrRef => ({ proposalOrRefType: 'proposal', proposal })),
  ];
  const applied = await applyProposals(state, proposals, leaf, makePskIndex(state, {}), true, cs);
  if (applied.additionalResult.kind !== 'memberCommit' || applied.additionalResult.extensions.length > 0) {
    throw new ProtocolError('only membership changes are committed in groups');
  }
  const joiners = applied.additionalResult.addedLeafNodes;

  // §12.4.2: new members learn the path secret from the Welcome, so the path leaves them out.
  const [tree, path, pathSecrets, leafKey] = await createUpdatePath(
    applied.tree,
    leaf,
    state.groupContext,
    state.signaturePrivateKey,
    cs,
    joiners.map(([joinerLeaf]) => leafToNodeIndex(joinerLeaf)),
  );
  const privatePath = mergePrivateKeyPaths(
    updateLeafKey(state.privatePath, await cs.hpke.exportPrivateKey(leafKey)),
    await toPrivateKeyPath(pathToPathSecrets(pathSecrets), leaf, cs),
  );
  const rootward = pathSecrets.at(-1);
  const commitSecret =
    rootward === undefined
      ? new Uint8Array(cs.kdf.size)
      : await getCommitSecret(tree, toNodeIndex(rootward.nodeIndex), rootward.secret, cs.kdf);

  const noAuthenticatedData = new Uint8Array();
  const { framedContent, signature } = await createContentCommitSignature(
    state.groupContext,
    'mls_private_message',
    { proposals, path },
    { senderType: 'member', leafIndex: leaf },
    noAuthenticatedData,
    state.signaturePrivateKey,
    cs.signature,
  );
  const groupContext = await nextEpochContext(
    state.groupContext,
    'mls_private_message',
    framedContent,
    signature,
    await treeHashRoot(tree, cs.hash),
    state.confirmationTag,
    cs.hash,
  );
  const epoch = await initializeEpoch(
    state.keySchedule.initSecret,
    commitSecret,
    groupContext,
    applied.pskSecret,
    cs.kdf,
  );
  const confirmationTag = await createConfirmationTag(
    epoch.keySchedule.confirmationKey,
    groupContext.confirmedTranscriptHash,
    cs.hash,
  );
  const framed = await protect(
    state.keySchedule.senderDataSecret,
    noAuthenticatedData,
    state.groupContext,
    state.secretTree,
    { ...framedContent, auth: { contentType: 'commit', signature, confirmationTag } },
    leaf,
    state.clientConfig.paddingConfig,
    cs,
  );

  // §12.4.3: one GroupInfo for everyone added, and per joiner the joiner secret plus the path
  // secret of the first path node above both of us.
  const groupInfo = await createGroupInfo(groupContext, confirmationTag, state, [], cs);
  const encryptedGroupInfo = await encryptGroupInfo(groupInfo, epoch.welcomeSecret, cs);
  const secrets = await Promise.all(
    joiners.map(async ([joinerLeaf, kp]) => {
      const ancestor = firstCommonAncestor(tree, joinerLeaf, leaf);
      const sealed = await encryptGroupSecrets(
        await cs.hpke.importPublicKey(kp.initKey),
        encryptedGroupInfo,
        {
          joinerSecret: epoch.joinerSecret,
          pathSecret: pathSecrets.find((ps) => ps.nodeIndex === ancestor)?.secret,
          psks: applied.pskIds,
        },
        cs.hpke,
      );
      return {
        newMember: await makeKeyPackageRef(kp, cs.hash),
        encryptedGroupSecrets: { kemOutput: sealed.enc, ciphertext: sealed.ct },
      };
    }),
  );

  const [historicalReceiverData, retiredEpochData] = addHistoricalReceiverData(state);
  const newState: ClientState = {
    groupContext,
    ratchetTree: tree,
    secretTree: await createSecretTree(leafWidth(tree.length), epoch.encryptionSecret, cs.kdf),
    keySchedule: epoch.keySchedule,
    privatePath,
    unappliedProposals: {},
    historicalReceiverData,
    confirmationTag,
    signaturePrivateKey: state.signaturePrivateKey,
    groupActiveState: { kind: 'active' },
    clientConfig: state.clientConfig,
  };
  wipe(commitSecret);
  wipe(epoch.encryptionSecret);
  wipe(epoch.joinerSecret);
  return {
    newState,
    commit: { version: 'mls10', wireformat: 'mls_private_message', privateMessage: framed.privateMessage },
    welcome:
      secrets.length > 0 ? { cipherSuite: groupContext.cipherSuite, secrets, encryptedGroupInfo } : undefined,
    consumed: [...framed.consumed, ...retiredEpochData, state.keySchedule.initSecret],
  };
}

/**
 * Whether ts-mls 1.6.4's joiner accepts the tree's unmerged leaves: for every parent node listing
 * a leaf as unmerged, every non-blank node on that leaf's whole direct path must carry exactly the
 * same list. Stricter than RFC 9420 §7.9.2, and a Welcome failing it would be refused by every
 * joiner running this library, so the committer finds out before sending it.
 */
function joinableByTsMls(tree: RatchetTree): boolean {
  const width = leafWidth(tree.length);
  for (const node of tree) {
    if (node?.nodeType !== 'parent') continue;
    const listed = node.parent.unmergedLeaves;
    for (const unmerged of listed) {
      for (const above of directPath(leafToNodeIndex(toLeafIndex(unmerged)), width)) {
        const other = tree[above];
        if (other === undefined || other.nodeType !== 'parent') continue;
        const same =
          other.parent.unmergedLeaves.length === listed.length &&
          other.parent.unmergedLeaves.every((l, i) => l === listed[i]);
        if (!same) return false;
      }
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Receiving
// ---------------------------------------------------------------------------------------------

export interface ProcessGroupOptions {
  /**
   * Accepted for symmetry with the sending side and deliberately unused: KeyPackage lifetimes are
   * judged by the proposer and the committer only, because a receiver with another clock that
   * refused what the committer accepted could not follow the commit and would fall out.
   */
  readonly now?: number;
}

export interface ProcessedGroupMessage {
  /** For kind 'removed' this is the session as it was: the caller deletes the group. */
  readonly state: GroupSession;
  /** 'removed': a commit that removed us; it is not applied, no later epoch can be read. */
  readonly kind: 'application' | 'proposal' | 'commit' | 'removed';
  /** Application data, for kind 'application'. */
  readonly plaintext?: Uint8Array;
  /** The MLS-authenticated sender. */
  readonly sender: Member;
  /** The epoch the message was framed in; for a commit, the epoch before it. */
  readonly epoch: bigint;
  /**
   * Members a commit added (as they sit in the new tree) and removed (as they sat before). For
   * kind 'removed', `added` is empty: the commit is not applied, so nobody has a new leaf.
   */
  readonly added: Member[];
  readonly removed: Member[];
  /** The proposal received, for kind 'proposal'. */
  readonly proposal?: PendingProposal;
  readonly consumed: Consumed;
}

/** PROTOCOL.md §9's rules for a group's handshake messages. */
const groupAdmission: Admission = (incoming, tree) => {
  const committer = committerLeafIndex(tree);
  if (incoming.kind === 'commit') {
    const sender = incoming.senderLeafIndex;
    const handOver =
      sender !== undefined &&
      sender === nextCommitterLeafIndex(tree) &&
      incoming.proposals.some(
        (p) => p.proposal.proposalType === 'remove' && p.proposal.remove.removed === committer,
      );
    if (sender !== committer && !handOver) {
      return new ProtocolError('commit from a member that is not the committer');
    }
    for (const p of incoming.proposals) {
      const refusal = proposalRefusal(p);
      if (refusal !== undefined) return refusal;
    }
    return undefined;
  }
  const p = incoming.proposal;
  if (p.proposal.proposalType === 'update' && p.senderLeafIndex === committer) {
    return new ProtocolError('the committer updates by committing, not by proposing');
  }
  return proposalRefusal(p);
};

function proposalRefusal(p: ProposalWithSender): RelayError | undefined {
  if (!isAllowed(p.proposal, GROUP_PROPOSALS))
    return new ProtocolError('proposal type not accepted in groups');
  if (p.proposal.proposalType === 'add') {
    const leaf = p.proposal.add.keyPackage.leafNode;
    if (!credentialIsValid(leaf.credential, leaf.signaturePublicKey)) {
      return new VerificationError('added KeyPackage credential does not derive from its key');
    }
  }
  return undefined;
}

/**
 * Decrypts and applies one group PrivateMessage (PROTOCOL.md §9). Throws VerificationError (does
 * not authenticate) or ProtocolError (another group, a future epoch, a handshake from a past one,
 * a commit by anyone but the committer outside a hand-over, a disallowed proposal…). Application
 * messages from the past epochs ts-mls keeps (4 with the default retention) still decrypt.
 */
export async function processGroupMessage(
  ctx: MlsContext,
  session: GroupSession,
  message: Uint8Array | DecodedMessage,
  _opts: ProcessGroupOptions = {},
): Promise<ProcessedGroupMessage> {
  const got = await receivePrivateMessage(ctx, session, message, groupAdmission);
  const { data, result, sender } = got;
  const epoch = got.pm.epoch;
  if (result.kind === 'applicationMessage') {
    return {
      state: wrap({ ...data, group: groupStateOf(result.newState) }),
      kind: 'application',
      plaintext: result.message,
      sender,
      epoch,
      added: [],
      removed: [],
      consumed: result.consumed,
    };
  }
  if (got.contentType === 'proposal') {
    const before = data.group.unappliedProposals;
    const fresh = Object.entries(result.newState.unappliedProposals).find(([ref]) => !(ref in before));
    const proposal = fresh === undefined ? undefined : describeProposal(hexRef(fresh[0]), fresh[1]);
    return {
      state: wrap({ ...data, group: groupStateOf(result.newState) }),
      kind: 'proposal',
      sender,
      epoch,
      added: [],
      removed: [],
      ...(proposal !== undefined ? { proposal } : {}),
      consumed: result.consumed,
    };
  }
  if (got.removedSelf) {
    // The commit is not applied, so there is no new tree to place added members in.
    const { removed } = membershipChange(data.group.ratchetTree, data.group.ratchetTree, got.proposals);
    return { state: session, kind: 'removed', sender, epoch, added: [], removed, consumed: result.consumed };
  }
  const change = membershipChange(data.group.ratchetTree, result.newState.ratchetTree, got.proposals);
  return {
    state: afterEpochChange(data, result.newState),
    kind: 'commit',
    sender,
    epoch,
    ...change,
    consumed: result.consumed,
  };
}
