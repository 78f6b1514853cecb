/**
 * The MLS engine of relay-bot: 1:1 sessions and N-way groups over ts-mls 1.6.4, behind our own interface.
 * Nothing here re-exports ts-mls types; GroupSession is opaque and stored via encodeSession.
 */
export {
  createMlsContext,
  RELAY_CIPHERSUITE,
  RELAY_CIPHERSUITE_ID,
  CLOCK_SKEW,
  KEY_PACKAGE_LIFETIME,
  KEY_PACKAGE_NOT_BEFORE_BACKDATE,
  type MlsContext,
  type MlsContextOptions,
} from './context.js';
export {
  generateKeyPackage,
  verifyKeyPackage,
  keyPackageVerifier,
  type SigningIdentity,
  type GeneratedKeyPackage,
  type VerifiedKeyPackage,
  type KeyPackageVerifier,
} from './keypackage.js';
export {
  createOneToOne,
  joinFromWelcome,
  encryptApplication,
  processMessage,
  proposeUpdate,
  commitPending,
  exportSecret,
  wipeConsumed,
  GroupLimitError,
  OwnMessageError,
  type Consumed,
  type CreateOptions,
  type CreatedSession,
  type StoredKeyPackage,
  type KeyPackageLookup,
  type JoinOptions,
  type JoinedSession,
  type EncryptedMessage,
  type ProcessOptions,
  type ProcessedMessage,
  type ProposalKind,
  type ProposedUpdate,
  type CommittedState,
} from './engine.js';
export {
  createGroup,
  proposeAdd,
  proposeRemove,
  pendingProposals,
  needsPathRefresh,
  commitGroup,
  processGroupMessage,
  type GroupCreateOptions,
  type CreatedGroup,
  type ProposedChange,
  type PendingProposal,
  type GroupCommitOptions,
  type GroupCommit,
  type ProcessGroupOptions,
  type ProcessedGroupMessage,
} from './group.js';
export {
  decodeMessage,
  DecodedMessage,
  peekSender,
  peekHeader,
  groupIdOfMessage,
  type PeekedSender,
  type MessageHeader,
  type MlsContentType,
} from './sender.js';
export {
  encodeSession,
  decodeSession,
  epochOf,
  groupIdOf,
  cameFromPreviousEpoch,
  membersOf,
  ownLeafIndex,
  isCommitter,
  isNextCommitter,
  committerOf,
  memberByIdentityKey,
  hasPendingProposals,
  hasPendingUpdate,
  SESSION_FORMAT_VERSION,
  type GroupSession,
  type Member,
} from './state.js';
export {
  encodeGroupSession,
  decodeGroupSession,
  decodeGroupSessionOnEpoch,
  decodeStoredSession,
  GROUP_STATE_PARTS_VERSION,
  type StoredGroupState,
  type EncodedGroupState,
  type GroupStateBasis,
} from './group-state-parts.js';
export { ExporterCache } from './exporter-cache.js';
export { userIdFromKey, credentialIdentityOf, identityMatchesKey } from './auth.js';
export { createNodeCryptoProvider, type NodeCryptoProviderOptions } from './provider-node.js';
