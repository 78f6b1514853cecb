/**
 * relay-bot: end-to-end encrypted chat bots on Relay (MLS over MQTT 5, sealed sender, proof of work).
 *
 *   import { Bot, OnCommand, type BotContext } from 'relay-bot';
 *
 * This is the one entry point a bot author needs. It is ordered from the names every bot uses to
 * the ones only plugin and tooling authors reach for. Experts have four more entry points, stable
 * names that do not follow the source folders:
 *   relay-bot/relay    the protocol layer (identity, seal, PoW, MLS, transport, RelayClient)
 *   relay-bot/store    durable storage: DataSource, migrations, entity schemas
 *   relay-bot/testing  createTestHarness: a bot end to end on a real broker and database
 *   relay-bot/plugins  the plugins alone (also exported here)
 * Re-exports go through each layer's index.ts, never its inner files, so a layer can move its
 * modules without changing this file. api/relay-bot.api.md is the report of what is exported.
 */

// Commonly used: decorators and the runtime that runs decorated classes.
export { Bot, OnCommand, OnMessage, OnJoin, OnLeave, OnMembers, OnError } from './framework/bot/index.js';
export { BotRuntime } from './framework/bot/index.js';
export type { BotContext } from './framework/bot/index.js';

// Connecting a bot: a client on a broker, over a store.
export { createRelayClient, RelayClient } from './framework/relay/index.js';
export type {
  CreateRelayClientOptions,
  RelayClientOptions,
  RelayClientEvents,
  BrokerOptions,
  ReceivedMessage,
  RelayStore,
  UserIdHex,
} from './framework/relay/index.js';
export { MemoryRelayStore } from './framework/relay/index.js';
export { createRelayStore, TypeOrmRelayStore } from './framework/store/index.js';
export type { CreateRelayStoreOptions } from './framework/store/index.js';

// Attachments: where files over 64 KiB go (encrypted), and what ctx.attachments holds.
export { LocalDirectoryBlobStore, S3BlobStore } from './framework/relay/index.js';
export type { BlobStore, AttachmentFile, ReceivedFile } from './framework/relay/index.js';

// Middleware: everything a bot does runs as (ctx, next).
export { Composer } from './framework/bot/index.js';

// Plugins: help, rate limit, access lists, ping.
export * from './plugins/index.js';

// Errors: one hierarchy, every error a RelayError with a stable code.
export {
  RelayError,
  CodecError,
  VerificationError,
  ProtocolError,
  TransportError,
  PublishTooLargeError,
  SharedSubscriptionsUnsupportedError,
  StorageError,
  StaleStateError,
  ConfigError,
  HandlerError,
  ArgumentError,
  ReplicaSlotTaken,
} from './framework/relay/index.js';
export type { RelayErrorCode } from './framework/relay/index.js';
export { ParseError } from './framework/bot/index.js';
export { DatabaseInUseError } from './framework/store/index.js';

// Everything else of the bot layer: context and group types, sessions and stored data, help
// rendering, and for experts the metadata, argument specs, command parser and job scheduler.
export * from './framework/bot/index.js';
