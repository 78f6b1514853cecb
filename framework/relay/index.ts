/**
 * framework/relay, published as `relay-bot/relay`: the Relay protocol (PROTOCOL.md §1–9). Bot
 * authors get RelayClient and createRelayClient from the package root ('relay-bot'); the lower
 * layers are exported here for independent clients, tooling and tests.
 */
// Commonly used
export { RelayClient } from './client.js';
export { createRelayClient, type CreateRelayClientOptions } from './create-relay-client.js';
export type {
  RelayClientOptions,
  RelayClientEvents,
  ReceivedMessage,
  DirectReceivedMessage,
  SessionEvent,
  BrokerOptions,
  ReplicaOptions,
  ReplyFn,
  TransactionalHandler,
  HandlerTransaction,
} from './client.js';
export type {
  GroupInfo,
  GroupMemberInfo,
  GroupEvent,
  GroupOptions,
  GroupConversation,
  GroupReceivedMessage,
} from './group-types.js';
export { signRejoin, verifyRejoin, rejoinSignatureMessage, type RejoinClaim } from './rejoin.js';
export {
  CONVERSATION_DATA_DELETED,
  MESSAGE_SENDERS_PER_CONVERSATION,
  MESSAGE_SENDER_SECONDS,
} from './store.js';
export { MemoryRelayStore } from './memory-store.js';
export type { LeaseStore, LeaseRecord, ReplicaInfo, ReplicaRecord } from './lease-store.js';
export { MAX_LEASE_NAME_LENGTH, MAX_LEASE_TTL_MS } from './lease-store.js';
export { MemoryLeaseStore } from './memory-lease-store.js';
export { DUTY, SOLE_OWNER, type Duties } from './duties.js';
export { deadOwners, DEFAULT_ORPHAN_CHECK_MS } from './outbox-orphans.js';
export {
  LeaseKeeper,
  systemLeaseTimers,
  DEFAULT_LEASE_TTL_MS,
  type LeaseKeeperOptions,
  type LeaseKeeperEvents,
  type LeaseLossReason,
  type LeaseTimers,
  type WantOptions,
} from './lease-keeper.js';
export { DEFAULT_FENCE_AFTER_MS, type ReplicaMembership } from './replica-fence.js';
export {
  holderBase,
  isSessionLease,
  processHolder,
  replicaSlotLease,
  sessionLease,
  slotOfLease,
  slotOfReplica,
} from './broker-client-id.js';
export { claimFixedSlot, ReplicaSlotTaken, type SlotClaimDeps, type SlotClaimKeeper } from './slot-claim.js';
export type { SessionKeeper } from './session-claim.js';
export type {
  RelayStore,
  ConversationRecord,
  DirectConversationRecord,
  GroupConversationRecord,
  ConversationMessageLoad,
  EnvelopeLookup,
  MessageLoad,
  InboundCommit,
  MessageSenderRecord,
  SessionRecord,
  PeerRecord,
  StoredIdentity,
  StoredKeyPackage,
  OwnBundle,
} from './store.js';
export * from './errors.js';
export { PublishTooLargeError } from './transport-packet-size.js';
export { SharedSubscriptionsUnsupportedError } from './transport-subscriptions.js';
export * from './brand.js';
export { DropCounters, DROP_REASONS, type DropReason } from './drops.js';
export { KindCounters } from './kind-counters.js';
export { WorkCounters, WORK_COUNTERS, type WorkCounter } from './work-counters.js';
export { systemClock, ManualClock, type Clock } from './clock.js';
export { systemRandom, type Random } from './random.js';
export { encodeContent, decodeContent, type ContentInput, type ContentEncodeOptions } from './content.js';
export * from './content-types.js';
export * from './profile.js';
export * from './attachments/index.js';

// Protocol building blocks
export * from './identity.js';
export * from './topics.js';
export * from './envelope.js';
export * from './bundle.js';
export * from './seal.js';
export {
  accessHint,
  accessTag,
  accessField,
  verifyAccessTag,
  hourBucket,
  AccessIndex,
  type AccessCandidate,
  type AccessEpoch,
} from './access.js';
export * from './pow.js';
export { toHex, fromHex } from './bytes.js';
export {
  LABEL,
  MSG_TYPE,
  DEFAULT_POW_BITS,
  MAX_MINED_POW_BITS,
  DEFAULT_MAX_ENVELOPE_BYTES,
} from './labels.js';
export { ensureOwnBundle, type OwnBundleDeps } from './own-bundle.js';
export { MAX_GROUP_MEMBERS } from './group-policy.js';
export { MqttTransport } from './transport.js';
export type { MqttTransportOptions, InboundMessage, PublishOptions, SubscribeOptions } from './transport.js';
export { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker.js';
/**
 * The MLS engine (RFC 9420 over ts-mls, suite 0x0001) behind our own interface: KeyPackages, 1:1
 * sessions and N-way groups, with opaque encodable state; for independent clients and tooling.
 */
export * as mls from './mls/index.js';
