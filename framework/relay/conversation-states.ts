/**
 * The one versioned cache of decoded MLS states and the one compare-and-set save, for 1:1 sessions
 * and groups alike (ARCHITECTURE.md "One conversation model"). Group ids are MLS group ids of both
 * kinds, unique across them, so one cache keyed by group id serves both.
 *
 * A save writes each record at version + 1 and fails with StaleStateError when the stored version
 * moved on (the store's compare-and-set). On success the written records move to their new
 * version and the state the caller names is cached at it; every other written record's cached
 * state is dropped. On failure all of them are dropped: the next attempt decodes what the store
 * really holds.
 */
import * as mls from './mls/index.js';
import { VersionedLru } from './state-cache.js';
import { StaleStateError, StorageError } from './errors.js';
import type { EnvelopeLookup, GroupMessageLoad, InboundCommit, MessageLoad, RelayStore } from './store.js';
import type { WorkCounters } from './work-counters.js';

/** A stored conversation record as far as the cache is concerned. */
interface VersionedState {
  groupId: string;
  version: number;
  state: Uint8Array;
  /** A group's epoch part (mls.encodeGroupSession); absent for 1:1 sessions and older group rows. */
  epochState?: Uint8Array;
}

/** What the cache's byte bound counts for a record: its stored state, both parts. */
const storedBytes = (r: VersionedState): number => r.state.length + (r.epochState?.length ?? 0);

/** The decoded state of a loaded record's version, when the cache holds it. */
export interface Cached {
  cached?: mls.GroupSession;
}

/** The decoded state of one record written by a save, to cache at its new version. */
export interface DecodedState {
  groupId: string;
  state: mls.GroupSession;
}

/**
 * A cached decoded state and the stored bytes of its version: the state column (a group's live
 * part) and, for a group, the epoch part. A load at this version does not read them again
 * (RelayStore heldVersion); they fill the loaded record, whose state and epochState the next write
 * encodes against (group-records.ts groupStateColumns). The byte bound already counts both.
 */
interface CacheEntry {
  session: mls.GroupSession;
  live: Uint8Array;
  epoch?: Uint8Array;
}

export class ConversationStates {
  private readonly cache = new VersionedLru<CacheEntry>();

  constructor(
    private readonly store: RelayStore,
    private readonly counters?: WorkCounters,
  ) {}

  /**
   * The decoded state of exactly this record version, when the cache holds it. A state held for
   * another version stays (it is never served for this one): decodeMissed() may reuse its epoch part.
   */
  cached(record: VersionedState): mls.GroupSession | undefined {
    const held = this.cache.peek(record.groupId);
    if (held?.version === record.version) {
      this.counters?.increment('state_cache_hit');
      return this.cache.get(record.groupId, record.version)!.session;
    }
    this.counters?.increment(held === undefined ? 'state_cache_cold' : 'state_cache_stale');
    return undefined;
  }

  decoded(record: VersionedState): mls.GroupSession {
    return this.cached(record) ?? this.decodeMissed(record);
  }

  /**
   * Decodes a record the cache had not at its version (after cached() said so). A group whose
   * epoch part is still the one of the state held for an older version (another replica processed
   * application messages since) decodes its live part only (mls.decodeGroupSessionOnEpoch).
   */
  decodeMissed(record: VersionedState): mls.GroupSession {
    const held = this.cache.peek(record.groupId)?.value;
    if (record.epochState && held?.epoch) {
      const stored = { live: record.state, epoch: record.epochState };
      const reused = mls.decodeGroupSessionOnEpoch(stored, { session: held.session, epoch: held.epoch });
      if (reused) {
        this.counters?.increment('state_epoch_reused');
        return reused;
      }
    }
    return mls.decodeStoredSession(record.state, record.epochState);
  }

  /**
   * The one read an inbound 1:1 message needs: session, processed check and peer, and with
   * `envelope` the store's replay check of its envelope. The session's state is not read when the
   * cache holds its version (see resolve()).
   */
  async loadDirect(
    groupId: string,
    digest: string,
    envelope?: EnvelopeLookup,
  ): Promise<(MessageLoad & Cached) | undefined> {
    const held = this.cache.peek(groupId);
    const loaded = await this.store.loadForMessage(groupId, digest, envelope, held?.version);
    if (!loaded) return undefined;
    const { stateSkipped, ...rest } = loaded;
    const { record: session, cached } = this.resolve(loaded.session, stateSkipped, held);
    return { ...rest, session, ...(cached ? { cached } : {}) };
  }

  /** The one read a group topic message needs: group and processed check (state as in loadDirect). */
  async loadGroup(groupId: string, digest: string): Promise<(GroupMessageLoad & Cached) | undefined> {
    const held = this.cache.peek(groupId);
    const loaded = await this.store.loadGroupForMessage(groupId, digest, held?.version);
    if (!loaded) return undefined;
    const { stateSkipped, ...rest } = loaded;
    const { record: group, cached } = this.resolve(loaded.group, stateSkipped, held);
    return { ...rest, group, ...(cached ? { cached } : {}) };
  }

  /**
   * A loaded record with its state, and its decoded state when held. When the store skipped the
   * state (the row is at the version `held` was, peeked before the load), the entry peeked then
   * fills it: that version's bytes and decoded state, even if a save or eviction replaced the
   * entry while the load ran (a version is written once, so its state cannot have changed).
   */
  private resolve<R extends VersionedState>(
    record: R,
    skipped: true | undefined,
    held: { version: number; value: CacheEntry } | undefined,
  ): { record: R; cached?: mls.GroupSession } {
    if (!skipped) {
      const cached = this.cached(record);
      return cached ? { record, cached } : { record };
    }
    if (held?.version !== record.version)
      throw new StorageError(`${record.groupId}: the store skipped the state of a version not held`);
    this.counters?.increment('state_cache_hit');
    // Touches the recency order when the entry is still there; get() at another version would
    // drop the entry that replaced it.
    if (this.cache.peek(record.groupId)?.version === record.version)
      this.cache.get(record.groupId, record.version);
    const { live, epoch, session } = held.value;
    const filled = { ...record, state: live, ...(epoch ? { epochState: epoch } : {}) };
    return { record: filled, cached: session };
  }

  forget(groupId: string): void {
    this.cache.delete(groupId);
  }

  async save(changes: InboundCommit, decoded?: DecodedState): Promise<void> {
    const written: VersionedState[] = changes.conversations ?? [];
    try {
      await this.store.commit(changes);
    } catch (e) {
      for (const r of written) this.cache.delete(r.groupId);
      if (e instanceof StaleStateError) this.counters?.increment('stale_commit');
      throw e;
    }
    for (const g of changes.deleteConversations ?? []) this.cache.delete(g);
    for (const r of written) {
      r.version += 1;
      if (decoded?.groupId === r.groupId) {
        const entry = {
          session: decoded.state,
          live: r.state,
          ...(r.epochState ? { epoch: r.epochState } : {}),
        };
        this.cache.set(r.groupId, r.version, entry, storedBytes(r));
      } else this.cache.delete(r.groupId);
    }
  }
}
