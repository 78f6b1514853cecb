/**
 * Access tokens (PROTOCOL.md §5): inside an established 1:1 session the sender proves knowledge of
 * K = MLS-Exporter("relay-access-v1", recipient_user_id, 32) (RFC 9420 §8.5) instead of mining PoW.
 *
 *   hint = HMAC-SHA256(K, "hint" || u64be(floor(sent_at / 3600)))[0..4]
 *   tag  = HMAC-SHA256(K, "tag" || enc || SHA-256(ciphertext) || u64be(sent_at))[0..16]
 *
 * The hint lets the recipient find the session without trying every key; the tag binds K to this
 * envelope's bytes and time, so a tag copied onto other bytes is worthless. HMAC (RFC 2104) and
 * SHA-256 come from node:crypto: measured about 2.5x faster than @noble/hashes for these inputs.
 */
import { createHash, createHmac } from 'node:crypto';
import { ArgumentError } from './errors.js';
import type { UnixSeconds } from './brand.js';
import { equalBytes, toHex, u64be, utf8, wipe } from './bytes.js';
import { SENT_AT_WINDOW_SECONDS } from './labels.js';

export const ACCESS_KEY_LENGTH = 32;
/**
 * Length of the access hint: 4 bytes, the first part of an envelope's access field; it lets a recipient
 * find the session without trying every key.
 */
export const ACCESS_HINT_LENGTH = 4;
/**
 * Length of the access tag: 16 bytes, the second part of an envelope's access field; an HMAC binding the
 * session key to this envelope.
 */
export const ACCESS_TAG_LENGTH = 16;
/** The envelope's access field (key 4): hint || tag. */
export const ACCESS_FIELD_LENGTH = ACCESS_HINT_LENGTH + ACCESS_TAG_LENGTH;
export const HOUR_SECONDS = 3600;

const HINT_LABEL = utf8('hint');
const TAG_LABEL = utf8('tag');

function checkKey(key: Uint8Array): void {
  if (key.length !== ACCESS_KEY_LENGTH) {
    throw new ArgumentError(`access key must be ${ACCESS_KEY_LENGTH} bytes`);
  }
}

function checkTime(sentAt: number): void {
  if (!Number.isSafeInteger(sentAt) || sentAt < 0) {
    throw new ArgumentError('sent_at must be a non-negative safe integer');
  }
}

function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const mac = createHmac('sha256', key);
  for (const p of parts) mac.update(p);
  return new Uint8Array(mac.digest());
}

/**
 * floor(sent_at / 3600): the hour an access hint is computed for; throws ArgumentError on a negative or
 * unsafe time.
 */
export function hourBucket(sentAt: UnixSeconds): number {
  checkTime(sentAt);
  return Math.floor(sentAt / HOUR_SECONDS);
}

function hintForBucket(key: Uint8Array, bucket: number): Uint8Array {
  return hmac(key, HINT_LABEL, u64be(bucket)).slice(0, ACCESS_HINT_LENGTH);
}

/** hint = HMAC-SHA256(K, "hint" || u64be(floor(sent_at / 3600)))[0..4]. */
export function accessHint(key: Uint8Array, sentAt: UnixSeconds): Uint8Array {
  checkKey(key);
  return hintForBucket(key, hourBucket(sentAt));
}

/** tag = HMAC-SHA256(K, "tag" || enc || SHA-256(ciphertext) || u64be(sent_at))[0..16]. */
export function accessTag(
  key: Uint8Array,
  enc: Uint8Array,
  ciphertext: Uint8Array,
  sentAt: UnixSeconds,
): Uint8Array {
  checkKey(key);
  checkTime(sentAt);
  const ctHash = new Uint8Array(createHash('sha256').update(ciphertext).digest());
  return hmac(key, TAG_LABEL, enc, ctHash, u64be(sentAt)).slice(0, ACCESS_TAG_LENGTH);
}

/** The 20-byte access field a sender puts in key 4 of the envelope. */
export function accessField(
  key: Uint8Array,
  enc: Uint8Array,
  ciphertext: Uint8Array,
  sentAt: UnixSeconds,
): Uint8Array {
  const out = new Uint8Array(ACCESS_FIELD_LENGTH);
  out.set(accessHint(key, sentAt), 0);
  out.set(accessTag(key, enc, ciphertext, sentAt), ACCESS_HINT_LENGTH);
  return out;
}

/** Constant-time in the tag bytes; a tag of the wrong length is simply false. */
export function verifyAccessTag(
  key: Uint8Array,
  enc: Uint8Array,
  ciphertext: Uint8Array,
  sentAt: UnixSeconds,
  tag: Uint8Array,
): boolean {
  return equalBytes(accessTag(key, enc, ciphertext, sentAt), tag);
}

/**
 * Which of a session's two kept access keys matched: the current epoch's, or the previous epoch's, kept so
 * envelopes framed before a Commit moved the session on still verify.
 */
export type AccessEpoch = 'current' | 'previous';

/** A session an access hint points to, with the key to verify the tag against; AccessIndex returns these. */
export interface AccessCandidate {
  sessionId: string;
  /** Owned by the index: valid until the next setSession/removeSession of this session. */
  key: Uint8Array;
  epoch: AccessEpoch;
}

interface SessionKeys {
  current: Uint8Array;
  previous?: Uint8Array;
}

/**
 * The recipient's hint → session lookup. It holds, for each session, the hints of its current and
 * previous epoch keys for every hour bucket an acceptable sent_at (now ± window) can touch: at most
 * two buckets, so at most sessions × 2 × 2 entries. The bucket set follows the clock passed to
 * `lookup`; when it moves, the bucket that left is dropped whole and only the bucket that entered is
 * computed (sessions × 2 HMACs, twice an hour).
 */
export class AccessIndex {
  private readonly sessions = new Map<string, SessionKeys>();
  /** hour bucket → hint hex → candidates. */
  private readonly tables = new Map<number, Map<string, AccessCandidate[]>>();

  constructor(private readonly windowSeconds: number = SENT_AT_WINDOW_SECONDS) {
    if (!Number.isSafeInteger(windowSeconds) || windowSeconds < 0 || windowSeconds >= HOUR_SECONDS) {
      // A window of an hour or more would need more than two buckets; nothing asks for that.
      throw new ArgumentError('access window must be an integer in 0..3599 seconds');
    }
  }

  /** Replaces the session's keys. The index copies them; the caller may wipe its own. */
  setSession(sessionId: string, keys: { current: Uint8Array; previous?: Uint8Array }): void {
    checkKey(keys.current);
    if (keys.previous !== undefined) checkKey(keys.previous);
    // Every processed message re-indexes its session; the keys change only with the epoch, and
    // recomputing the same hints would cost four HMACs per bucket for nothing.
    if (sameKeys(this.sessions.get(sessionId), keys)) return;
    this.removeSession(sessionId);
    const copy: SessionKeys = { current: keys.current.slice() };
    if (keys.previous !== undefined) copy.previous = keys.previous.slice();
    this.sessions.set(sessionId, copy);
    for (const [bucket, table] of this.tables) addEntries(table, bucket, sessionId, copy);
  }

  /** Forgets the session and wipes the index's copy of its keys. */
  removeSession(sessionId: string): void {
    const old = this.sessions.get(sessionId);
    if (old === undefined) return;
    this.sessions.delete(sessionId);
    for (const [bucket, table] of this.tables) {
      for (const key of keysOf(old)) {
        const hint = toHex(hintForBucket(key, bucket));
        const kept = (table.get(hint) ?? []).filter((c) => c.sessionId !== sessionId);
        if (kept.length === 0) table.delete(hint);
        else table.set(hint, kept);
      }
    }
    wipe(old.current);
    wipe(old.previous);
  }

  get size(): number {
    return this.sessions.size;
  }

  /**
   * Sessions whose hint for sent_at's hour matches. Empty when sent_at is outside now ± window
   * (such an envelope is dropped earlier anyway) or the hint has the wrong length. The caller still
   * verifies the tag: a hint is 32 bits and collides by chance.
   */
  lookup(hint: Uint8Array, sentAt: UnixSeconds, now: UnixSeconds): AccessCandidate[] {
    checkTime(now);
    checkTime(sentAt);
    if (hint.length !== ACCESS_HINT_LENGTH) return [];
    if (Math.abs(sentAt - now) > this.windowSeconds) return [];
    this.syncBuckets(now);
    const list = this.tables.get(hourBucket(sentAt))?.get(toHex(hint));
    return list === undefined ? [] : list.slice();
  }

  /**
   * The token check of the receive pipeline: splits the 20-byte access field, looks the hint up
   * and returns the first candidate whose tag verifies, or undefined (then PoW decides).
   */
  match(
    access: Uint8Array,
    enc: Uint8Array,
    ciphertext: Uint8Array,
    sentAt: UnixSeconds,
    now: UnixSeconds,
  ): AccessCandidate | undefined {
    if (access.length !== ACCESS_FIELD_LENGTH) return undefined;
    const hint = access.subarray(0, ACCESS_HINT_LENGTH);
    const tag = access.subarray(ACCESS_HINT_LENGTH);
    for (const c of this.lookup(hint, sentAt, now)) {
      if (verifyAccessTag(c.key, enc, ciphertext, sentAt, tag)) return c;
    }
    return undefined;
  }

  /** Hour buckets currently indexed (for tests and metrics). */
  indexedBuckets(): number[] {
    return [...this.tables.keys()].sort((a, b) => a - b);
  }

  private syncBuckets(now: number): void {
    const lo = Math.floor(Math.max(0, now - this.windowSeconds) / HOUR_SECONDS);
    const hi = Math.floor((now + this.windowSeconds) / HOUR_SECONDS);
    for (const bucket of this.tables.keys()) {
      if (bucket < lo || bucket > hi) this.tables.delete(bucket);
    }
    for (let bucket = lo; bucket <= hi; bucket++) {
      if (this.tables.has(bucket)) continue;
      const table = new Map<string, AccessCandidate[]>();
      for (const [sessionId, keys] of this.sessions) addEntries(table, bucket, sessionId, keys);
      this.tables.set(bucket, table);
    }
  }
}

function sameKeys(
  held: SessionKeys | undefined,
  keys: { current: Uint8Array; previous?: Uint8Array },
): boolean {
  if (held === undefined || !equalBytes(held.current, keys.current)) return false;
  if (held.previous === undefined || keys.previous === undefined) return held.previous === keys.previous;
  return equalBytes(held.previous, keys.previous);
}

function keysOf(keys: SessionKeys): Uint8Array[] {
  return keys.previous === undefined ? [keys.current] : [keys.current, keys.previous];
}

function addEntries(
  table: Map<string, AccessCandidate[]>,
  bucket: number,
  sessionId: string,
  keys: SessionKeys,
): void {
  const epochs: Array<[AccessEpoch, Uint8Array | undefined]> = [
    ['current', keys.current],
    ['previous', keys.previous],
  ];
  for (const [epoch, key] of epochs) {
    if (key === undefined) continue;
    const hint = toHex(hintForBucket(key, bucket));
    const candidate: AccessCandidate = { sessionId, key, epoch };
    const list = table.get(hint);
    if (list === undefined) table.set(hint, [candidate]);
    else list.push(candidate);
  }
}
