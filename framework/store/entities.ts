/**
 * The relay tables, defined once for both backends. EntitySchema rather than decorator classes
 * because a decorator fixes one column type, and byte columns must be `bytea` on Postgres but
 * `blob` on SQLite. The store itself talks SQL (see typeorm-store.ts); these schemas exist so
 * TypeORM's migration tooling can compare the hand-written migrations against one definition.
 */
import { EntitySchema, type EntitySchemaColumnOptions } from 'typeorm';

/** The two supported databases; picks column types, entity schemas and migrations. */
export type RelayBackend = 'postgres' | 'sqlite';

type Columns = Record<string, EntitySchemaColumnOptions>;

interface Types {
  bytes: EntitySchemaColumnOptions['type'];
  /** Unix seconds and counters that may outgrow 32 bits. */
  int64: EntitySchemaColumnOptions['type'];
  /**
   * MLS epochs are uint64: Postgres keeps them as bigint; SQLite as text, because better-sqlite3
   * would hand back a lossy JS number above 2^53.
   */
  epoch: EntitySchemaColumnOptions['type'];
}

const typesFor = (kind: RelayBackend): Types =>
  kind === 'postgres'
    ? { bytes: 'bytea', int64: 'bigint', epoch: 'bigint' }
    : { bytes: 'blob', int64: 'integer', epoch: 'text' };

type SchemaExtra = Pick<ConstructorParameters<typeof EntitySchema>[0], 'indices' | 'uniques' | 'checks'>;

// Named primary keys keep the hand-written migrations readable and comparable with this definition.
const schema = (name: string, columns: Columns, extra: SchemaExtra = {}) => {
  const named = Object.fromEntries(
    Object.entries(columns).map(([k, c]) => [
      k,
      c.primary ? { ...c, primaryKeyConstraintName: `pk_${name}` } : c,
    ]),
  );
  return new EntitySchema({ name, tableName: name, columns: named, ...extra });
};

/** Marks rows whose secret columns are AES-256-GCM ciphertext (1) or plaintext (0). */
const atRest: EntitySchemaColumnOptions = { type: 'smallint', default: 0 };

const identities = (t: Types) =>
  schema('identities', {
    id: { type: 'integer', primary: true },
    signing_seed: { type: t.bytes },
    seal_secret: { type: t.bytes },
    created_at: { type: t.int64 },
    at_rest: atRest,
  });

const keyPackages = (t: Types) =>
  schema('key_packages', {
    ref: { type: 'text', primary: true },
    key_package: { type: t.bytes },
    private_key_package: { type: t.bytes },
    created_at: { type: t.int64 },
    not_after: { type: t.int64 },
    consumed_at: { type: t.int64, nullable: true },
    superseded_at: { type: t.int64, nullable: true },
    at_rest: atRest,
  });

const ownBundle = (t: Types) =>
  schema('own_bundle', {
    id: { type: 'integer', primary: true },
    bytes: { type: t.bytes },
    issued_at: { type: t.int64 },
    key_package_ref: { type: 'text' },
  });

const peers = (t: Types) =>
  schema('peers', {
    user_id: { type: 'text', primary: true },
    identity_key: { type: t.bytes },
    seal_key: { type: t.bytes },
    pow_bits: { type: 'integer' },
    bundle_issued_at: { type: t.int64, nullable: true },
    display_name: { type: 'text', nullable: true },
  });

/** Each kind has its own columns and only those. */
const CONVERSATION_KIND_CHECK = [
  `("kind" = 'direct' AND "peer_id" IS NOT NULL AND "initiated_unconfirmed" IS NOT NULL`,
  ` AND "inbound_access_current" IS NOT NULL AND "messages_since_commit" IS NOT NULL`,
  ` AND "unconfirmed_outgoing" IS NOT NULL AND "topic_id" IS NULL AND "meta" IS NULL)`,
  ` OR ("kind" = 'group' AND "topic_id" IS NOT NULL AND "meta" IS NOT NULL AND "peer_id" IS NULL)`,
].join('');

/**
 * 1:1 sessions (kind 'direct', PROTOCOL.md §7) and N-way groups (kind 'group', §9) in one table,
 * keyed by the MLS group id, with one version for the compare-and-set save of either kind. Each
 * kind's own columns are nullable columns rather than a JSON blob: peer_id and topic_id stay
 * indexed, and every secret column stays sealed on its own (migrations/conversations-copy.ts).
 */
const conversations = (t: Types) =>
  schema(
    'conversations',
    {
      group_id: { type: 'text', primary: true },
      kind: { type: 'text' },
      state: { type: t.bytes },
      epoch: { type: t.epoch },
      version: { type: 'integer' },
      updated_at: { type: t.int64 },
      at_rest: atRest,
      // kind 'direct'
      peer_id: { type: 'text', nullable: true },
      initiated_unconfirmed: { type: 'boolean', nullable: true },
      inbound_access_current: { type: t.bytes, nullable: true },
      inbound_access_previous: { type: t.bytes, nullable: true },
      messages_since_commit: { type: 'integer', nullable: true },
      unconfirmed_outgoing: { type: 'text', nullable: true },
      // Set while the peer has sent no application message (PROTOCOL.md §10 session expiry).
      unused_since: { type: t.int64, nullable: true },
      // kind 'group'
      topic_id: { type: 'text', nullable: true },
      meta: { type: 'text', nullable: true },
      // A group's epoch part (issue #12); NULL for 1:1 sessions and groups stored before the split.
      epoch_state: { type: t.bytes, nullable: true },
    },
    {
      indices: [
        { name: 'idx_conversations_peer_id', columns: ['peer_id'] },
        // Unique because the topic id is derived from the group id; getGroupByTopic reads through it.
        { name: 'idx_conversations_topic_id', columns: ['topic_id'], unique: true },
      ],
      checks: [{ name: 'chk_conversations_kind', expression: CONVERSATION_KIND_CHECK }],
    },
  );

const processed = (t: Types) =>
  schema(
    'processed',
    {
      group_id: { type: 'text', primary: true },
      digest: { type: 'text', primary: true },
      at: { type: t.int64 },
    },
    { indices: [{ name: 'idx_processed_at', columns: ['at'] }] },
  );

const envelopes = (t: Types) =>
  schema(
    'envelopes',
    { digest: { type: 'text', primary: true }, expires_at: { type: t.int64 } },
    { indices: [{ name: 'idx_envelopes_expires_at', columns: ['expires_at'] }] },
  );

const welcomes = (t: Types) =>
  schema(
    'welcomes',
    { digest: { type: 'text', primary: true }, at: { type: t.int64 } },
    { indices: [{ name: 'idx_welcomes_at', columns: ['at'] }] },
  );

const outbox = (t: Types) =>
  schema(
    'outbox',
    {
      // The autoincrement key is the commit order that listOutbox replays in.
      seq: { type: t.int64, primary: true, generated: 'increment' },
      id: { type: 'text' },
      topic: { type: 'text' },
      payload: { type: t.bytes },
      retain: { type: 'boolean', nullable: true },
      message_expiry_seconds: { type: 'integer', nullable: true },
      created_at: { type: t.int64 },
      await_ack: { type: 'boolean', default: false },
      // Set when the row can never be published; listOutbox skips it (see quarantineOutbox).
      quarantined_at: { type: t.int64, nullable: true },
      depends_on: { type: 'text', nullable: true },
      // The replica that committed the row and publishes it (null: a single process's row).
      replica: { type: 'text', nullable: true },
    },
    {
      uniques: [{ name: 'uq_outbox_id', columns: ['id'] }],
      indices: [{ name: 'idx_outbox_replica', columns: ['replica'] }],
    },
  );

/** Inbound messages acknowledged before their slow handler finished (framework/relay/parking.ts). */
const parkedInbound = (t: Types) =>
  schema(
    'parked_inbound',
    {
      // The autoincrement key is the arrival order that start-up re-runs them in.
      seq: { type: t.int64, primary: true, generated: 'increment' },
      id: { type: 'text' },
      topic: { type: 'text' },
      payload: { type: t.bytes },
      arrived_at: { type: t.int64 },
    },
    { uniques: [{ name: 'uq_parked_inbound_id', columns: ['id'] }] },
  );

const conversationData = () =>
  schema('conversation_data', {
    conversation_id: { type: 'text', primary: true },
    json: { type: 'text' },
    at_rest: atRest,
  });

/** Store-wide settings; today the state-key record (state-key.ts). */
const relayMeta = () =>
  schema('relay_meta', {
    key: { type: 'text', primary: true },
    value: { type: 'text' },
  });

/**
 * Leases of the duties replicas share (issue 13); ms on the database clock (lease-store.ts).
 * Indexed by holder for releaseAll at shutdown.
 */
const leases = (t: Types) =>
  schema(
    'leases',
    {
      name: { type: 'text', primary: true },
      holder: { type: 'text' },
      acquired_at: { type: t.int64 },
      expires_at: { type: t.int64 },
    },
    { indices: [{ name: 'idx_leases_holder', columns: ['holder'] }] },
  );

/** The replica registry: one row per live replica, its heartbeat in last_seen (ms, database clock). */
const replicas = (t: Types) =>
  schema('replicas', {
    replica_id: { type: 'text', primary: true },
    host: { type: 'text', nullable: true },
    pid: { type: 'integer', nullable: true },
    started_at: { type: t.int64 },
    last_seen: { type: t.int64 },
  });

/**
 * The sender index (PROTOCOL.md §8 checks): who sent each recent message id of a conversation. The
 * autoincrement key orders a conversation's entries for its bound (the newest 1,000 stay).
 */
const messageSenders = (t: Types) =>
  schema(
    'message_senders',
    {
      seq: { type: t.int64, primary: true, generated: 'increment' },
      group_id: { type: 'text' },
      message_id: { type: 'text' },
      sender: { type: 'text' },
      at: { type: t.int64 },
    },
    {
      uniques: [{ name: 'uq_message_senders_id', columns: ['group_id', 'message_id'] }],
      indices: [
        { name: 'idx_message_senders_group_seq', columns: ['group_id', 'seq'] },
        { name: 'idx_message_senders_at', columns: ['at'] },
      ],
    },
  );

/** All relay tables with the column types of one backend. */
export function relayEntities(kind: RelayBackend): EntitySchema[] {
  const t = typesFor(kind);
  return [
    identities(t),
    keyPackages(t),
    ownBundle(t),
    peers(t),
    conversations(t),
    processed(t),
    envelopes(t),
    welcomes(t),
    outbox(t),
    conversationData(),
    relayMeta(),
    parkedInbound(t),
    leases(t),
    replicas(t),
    messageSenders(t),
  ];
}
