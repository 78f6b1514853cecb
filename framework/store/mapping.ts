/**
 * Rows ↔ relay records. The two drivers disagree on representations: pg returns bigint columns as
 * strings and booleans as booleans, better-sqlite3 returns integers as numbers and booleans as 0/1,
 * and both return Buffers where the relay layer wants plain Uint8Arrays. All of that is settled here.
 */
import type { UnixSeconds } from '../relay/brand.js';
import { ArgumentError, StorageError } from '../relay/errors.js';
import type {
  OutboxRecord,
  OwnBundle,
  ParkedInboundRecord,
  PeerRecord,
  StoredIdentity,
  StoredKeyPackage,
} from '../relay/store.js';
import type { AtRestCipher } from './crypto-at-rest.js';

export type Row = Record<string, unknown>;

/** Postgres bigint is signed: the largest epoch both backends can hold alike. */
const MAX_EPOCH = (1n << 63n) - 1n;

export function toBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return new Uint8Array(v);
  throw new StorageError(`expected bytes from the database, got ${typeof v}`);
}

/** Bytes as both drivers bind them (pg and better-sqlite3 take Buffers). */
export const toParam = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

export function toInt(v: unknown): number {
  const n = typeof v === 'string' || typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n))
    throw new StorageError(`expected an integer from the database, got ${String(v)}`);
  return n;
}

export const toSeconds = (v: unknown) => toInt(v) as UnixSeconds;

export const optSeconds = (v: unknown) => (v === null || v === undefined ? undefined : toSeconds(v));

export function toBool(v: unknown): boolean {
  if (typeof v === 'boolean') return v;
  if (v === 0 || v === 1) return v === 1;
  throw new StorageError(`expected a boolean from the database, got ${String(v)}`);
}

export function toBigInt(v: unknown): bigint {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint') return BigInt(v);
  throw new StorageError(`expected an integer from the database, got ${typeof v}`);
}

/** Epoch as a decimal string: Postgres parses it into bigint, SQLite keeps it as text. */
export function epochParam(epoch: bigint): string {
  if (epoch < 0n || epoch > MAX_EPOCH) throw new ArgumentError(`epoch ${epoch} is outside 0..2^63-1`);
  return epoch.toString();
}

/** Drops undefined properties, so records read back compare equal to what was written. */
export function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export const nullable = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

// ---- identities ---------------------------------------------------------------------------------

export const IDENTITY_ROW_ID = 1;

const identitySlot = (column: string) => ({ table: 'identities', column, key: String(IDENTITY_ROW_ID) });

export function identityParams(id: StoredIdentity, c: AtRestCipher): unknown[] {
  return [
    IDENTITY_ROW_ID,
    toParam(c.seal(id.signingSeed, identitySlot('signing_seed'))),
    toParam(c.seal(id.sealSecret, identitySlot('seal_secret'))),
    id.createdAt,
    c.flag,
  ];
}

export function rowToIdentity(r: Row, c: AtRestCipher): StoredIdentity {
  const flag = toInt(r.at_rest);
  return {
    signingSeed: c.open(toBytes(r.signing_seed), flag, identitySlot('signing_seed')),
    sealSecret: c.open(toBytes(r.seal_secret), flag, identitySlot('seal_secret')),
    createdAt: toSeconds(r.created_at),
  };
}

// ---- key_packages -------------------------------------------------------------------------------

const kpSlot = (ref: string) => ({ table: 'key_packages', column: 'private_key_package', key: ref });

export function keyPackageParams(kp: StoredKeyPackage, c: AtRestCipher): unknown[] {
  return [
    kp.ref,
    toParam(kp.keyPackage),
    toParam(c.seal(kp.privateKeyPackage, kpSlot(kp.ref))),
    kp.createdAt,
    kp.notAfter,
    nullable(kp.consumedAt),
    nullable(kp.supersededAt),
    c.flag,
  ];
}

export function rowToKeyPackage(r: Row, c: AtRestCipher): StoredKeyPackage {
  const ref = String(r.ref);
  return defined({
    ref,
    keyPackage: toBytes(r.key_package),
    privateKeyPackage: c.open(toBytes(r.private_key_package), toInt(r.at_rest), kpSlot(ref)),
    createdAt: toSeconds(r.created_at),
    notAfter: toSeconds(r.not_after),
    consumedAt: optSeconds(r.consumed_at),
    supersededAt: optSeconds(r.superseded_at),
  });
}

// ---- own_bundle ---------------------------------------------------------------------------------

export const OWN_BUNDLE_ROW_ID = 1;

export const ownBundleParams = (b: OwnBundle): unknown[] => [
  OWN_BUNDLE_ROW_ID,
  toParam(b.bytes),
  b.issuedAt,
  b.keyPackageRef,
];

export const rowToOwnBundle = (r: Row): OwnBundle => ({
  bytes: toBytes(r.bytes),
  issuedAt: toSeconds(r.issued_at),
  keyPackageRef: String(r.key_package_ref),
});

// ---- peers --------------------------------------------------------------------------------------

/** Every peer column, in the order peerParams lists them. */
export const PEER_COLUMNS = [
  'user_id',
  'identity_key',
  'seal_key',
  'pow_bits',
  'bundle_issued_at',
  'display_name',
] as const;

export const peerParams = (p: PeerRecord): unknown[] => [
  p.userId,
  toParam(p.identityKey),
  toParam(p.sealKey),
  p.powBits,
  nullable(p.bundleIssuedAt),
  nullable(p.displayName),
];

export const rowToPeer = (r: Row): PeerRecord =>
  defined({
    userId: String(r.user_id),
    identityKey: toBytes(r.identity_key),
    sealKey: toBytes(r.seal_key),
    powBits: toInt(r.pow_bits),
    bundleIssuedAt: optSeconds(r.bundle_issued_at),
    displayName: r.display_name === null || r.display_name === undefined ? undefined : String(r.display_name),
  });

// ---- outbox -------------------------------------------------------------------------------------

/** Every outbox column except the generated seq, in the order outboxParams lists them. */
export const OUTBOX_COLUMNS = [
  'id',
  'topic',
  'payload',
  'retain',
  'message_expiry_seconds',
  'created_at',
  'await_ack',
  'depends_on',
  'replica',
] as const;

export const outboxParams = (o: OutboxRecord): unknown[] => [
  o.id,
  o.topic,
  toParam(o.payload),
  nullable(o.retain),
  nullable(o.messageExpirySeconds),
  o.createdAt,
  o.awaitAck === true,
  nullable(o.dependsOn),
  nullable(o.replica),
];

export const rowToOutbox = (r: Row): OutboxRecord =>
  defined({
    id: String(r.id),
    topic: String(r.topic),
    payload: toBytes(r.payload),
    retain: r.retain === null || r.retain === undefined ? undefined : toBool(r.retain),
    messageExpirySeconds:
      r.message_expiry_seconds === null || r.message_expiry_seconds === undefined
        ? undefined
        : toInt(r.message_expiry_seconds),
    awaitAck: toBool(r.await_ack) ? true : undefined,
    dependsOn: r.depends_on === null || r.depends_on === undefined ? undefined : String(r.depends_on),
    createdAt: toSeconds(r.created_at),
    replica: r.replica === null || r.replica === undefined ? undefined : String(r.replica),
  });

// ---- conversation_data --------------------------------------------------------------------------

/** ctx.session and other bot data: the conversation's plaintext, sealed under its conversation id. */
const conversationSlot = (conversationId: string) => ({
  table: 'conversation_data',
  column: 'json',
  key: conversationId,
});

export const conversationParams = (conversationId: string, json: string, c: AtRestCipher): unknown[] => [
  conversationId,
  c.sealText(json, conversationSlot(conversationId)),
  c.flag,
];

export const rowToConversationJson = (r: Row, c: AtRestCipher): string =>
  c.openText(String(r.json), toInt(r.at_rest), conversationSlot(String(r.conversation_id)));

/** Every parked_inbound column except the generated seq, in the order parkedParams lists them. */
export const PARKED_COLUMNS = ['id', 'topic', 'payload', 'arrived_at'] as const;

export const parkedParams = (p: ParkedInboundRecord): unknown[] => [
  p.id,
  p.topic,
  toParam(p.payload),
  p.arrivedAt,
];

export const rowToParked = (r: Row): ParkedInboundRecord => ({
  id: String(r.id),
  topic: String(r.topic),
  payload: toBytes(r.payload),
  arrivedAt: toSeconds(r.arrived_at),
});
