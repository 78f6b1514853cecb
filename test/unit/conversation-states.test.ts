// The one versioned cache and compare-and-set save (conversation-states.ts), over the memory store.
import { asGroupIdHex, type UnixSeconds } from '../../framework/relay/brand.js';
import { ConversationStates } from '../../framework/relay/conversation-states.js';
import { StaleStateError } from '../../framework/relay/errors.js';
import {
  createGroup,
  createMlsContext,
  decodeStoredSession,
  encodeGroupSession,
  encodeSession,
  type GroupSession,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import { MemoryRelayStore } from '../../framework/relay/memory-store.js';
import { WorkCounters } from '../../framework/relay/work-counters.js';
import type {
  DirectConversationRecord,
  GroupConversationRecord,
  RelayStore,
} from '../../framework/relay/store.js';
import { makeIdentity, nowSeconds } from './mls-helpers.js';

let ctx: MlsContext;
let state: GroupSession;

beforeAll(async () => {
  ctx = await createMlsContext();
  state = (await createGroup(ctx, makeIdentity(), { now: nowSeconds() })).state;
});

const session = (groupId: string): DirectConversationRecord => ({
  kind: 'direct',
  groupId: asGroupIdHex(groupId),
  peerId: 'cd'.repeat(32),
  state: encodeSession(state),
  epoch: 0n,
  initiatedUnconfirmed: false,
  inboundAccess: { current: new Uint8Array(32) },
  messagesSinceCommit: 0,
  unconfirmedOutgoing: [],
  updatedAt: 1 as UnixSeconds,
  version: 0,
});

const group = (groupId: string): GroupConversationRecord => ({
  kind: 'group',
  groupId: asGroupIdHex(groupId),
  topicId: groupId.slice(0, 32),
  state: encodeSession(state),
  epoch: 0n,
  meta: '{}',
  updatedAt: 1 as UnixSeconds,
  version: 0,
});

describe('ConversationStates', () => {
  it('caches the named state at the version written, for a session and a group alike', async () => {
    const states = new ConversationStates(new MemoryRelayStore());
    const s = session('01'.repeat(32));
    const g = group('02'.repeat(32));
    await states.save({ conversations: [s] }, { groupId: s.groupId, state });
    await states.save({ conversations: [g] }, { groupId: g.groupId, state });
    expect(s.version).toBe(1);
    expect(g.version).toBe(1);
    expect(states.cached(s)).toBe(state);
    expect(states.cached(g)).toBe(state);
    // Only the exact version is ever served.
    expect(states.cached({ ...s, version: 0 })).toBeUndefined();
  });

  it('moves every written record to its new version but caches only the named one', async () => {
    const states = new ConversationStates(new MemoryRelayStore());
    const s = session('03'.repeat(32));
    const g = group('04'.repeat(32));
    await states.save({ conversations: [s, g] }, { groupId: s.groupId, state });
    expect([s.version, g.version]).toEqual([1, 1]);
    expect(states.cached(s)).toBe(state);
    expect(states.cached(g)).toBeUndefined();
  });

  it('refuses a stale write and drops the cached state, so the next attempt decodes the stored one', async () => {
    const store = new MemoryRelayStore();
    const states = new ConversationStates(store);
    const s = session('05'.repeat(32));
    await states.save({ conversations: [s] }, { groupId: s.groupId, state });
    const stale = { ...s, version: 0 };
    await expect(
      states.save({ conversations: [stale] }, { groupId: s.groupId, state }),
    ).rejects.toBeInstanceOf(StaleStateError);
    expect(stale.version).toBe(0);
    expect(states.cached(s)).toBeUndefined();
    expect(states.decoded(s)).not.toBe(state);
  });

  it('forgets deleted conversations', async () => {
    const states = new ConversationStates(new MemoryRelayStore());
    const s = session('06'.repeat(32));
    await states.save({ conversations: [s] }, { groupId: s.groupId, state });
    await states.save({ deleteConversations: [s.groupId] });
    expect(states.cached(s)).toBeUndefined();
  });

  it('loads a conversation for a message in one read, with the decoded state when cached at that version', async () => {
    const store = new MemoryRelayStore();
    const states = new ConversationStates(store);
    const s = session('07'.repeat(32));
    const g = group('08'.repeat(32));
    await states.save(
      { conversations: [s], processed: { groupId: s.groupId, digest: 'd1', at: 1 as UnixSeconds } },
      { groupId: s.groupId, state },
    );
    await states.save({ conversations: [g] });
    const direct = await states.loadDirect(s.groupId, 'd1');
    expect(direct).toMatchObject({ processed: true, cached: state });
    expect(direct?.session.version).toBe(1);
    const inGroup = await states.loadGroup(g.groupId, 'd1');
    expect(inGroup).toMatchObject({ processed: false });
    expect(inGroup?.cached).toBeUndefined();
    expect(await states.loadDirect(g.groupId, 'd1')).toBeUndefined();
    expect(await states.loadGroup(s.groupId, 'd1')).toBeUndefined();
  });

  /** A memory store that records the held version each message load is given and what it skipped. */
  function watched(inner = new MemoryRelayStore()) {
    const loads: Array<{ held: number | undefined; skipped: boolean }> = [];
    let during: (() => void) | undefined;
    const store = new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === 'loadConversationForMessage')
          return async (...args: Parameters<RelayStore['loadConversationForMessage']>) => {
            during?.();
            const found = await target.loadConversationForMessage(...args);
            loads.push({ held: args[3], skipped: found?.stateSkipped === true });
            return found;
          };
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    return { store, inner, loads, whileLoading: (f: () => void) => (during = f) };
  }

  /** A group record with both stored parts, as GroupRecords writes it. */
  const splitGroup = (groupId: string): GroupConversationRecord => {
    const { live, epoch } = encodeGroupSession(state);
    return { ...group(groupId), state: live, epochState: epoch };
  };

  it('a load at the cached version skips the stored state and fills it from the cache', async () => {
    const { store, inner, loads } = watched();
    const work = new WorkCounters();
    const states = new ConversationStates(store, work);
    const s = session('0a'.repeat(32));
    const g = splitGroup('0b'.repeat(32));
    await states.save({ conversations: [s] }, { groupId: s.groupId, state });
    await states.save({ conversations: [g] }, { groupId: g.groupId, state });

    const direct = await states.loadDirect(s.groupId, 'd1', { digest: 'e1', now: 1 as UnixSeconds });
    const inGroup = await states.loadGroup(g.groupId, 'd1');
    expect(loads).toEqual([
      { held: 1, skipped: true },
      { held: 1, skipped: true },
    ]);
    // The same record a full read gives (the basis of the next write), the decoded state, no flag.
    const { kind: _d, ...storedSession } = (await inner.getConversation(s.groupId))!;
    const { kind: _g, ...storedGroup } = (await inner.getConversation(g.groupId))!;
    expect(direct).toEqual({
      session: storedSession,
      processed: false,
      peer: undefined,
      envelopeSeen: false,
      cached: state,
    });
    expect(inGroup).toEqual({ group: storedGroup, processed: false, cached: state });
    expect(inGroup!.group.epochState).toEqual(g.epochState);
    expect(work.get('state_cache_hit')).toBe(2);
  });

  it('a cold or stale cache reads the whole state and decodes it', async () => {
    const { store, inner, loads } = watched();
    const states = new ConversationStates(store);
    const g = splitGroup('0c'.repeat(32));
    await states.save({ conversations: [g] }); // not cached: cold
    const cold = await states.loadGroup(g.groupId, 'd1');
    expect(cold?.cached).toBeUndefined();
    expect(cold?.group.state).toEqual(g.state);

    await states.save({ conversations: [{ ...cold!.group, kind: 'group' }] }, { groupId: g.groupId, state });
    // Another process writes version 3: the cache holds version 2.
    const other = { ...splitGroup('0c'.repeat(32)), state: encodeSession(state), epochState: undefined };
    await inner.commit({ conversations: [{ ...other, version: 2 }] });
    const stale = await states.loadGroup(g.groupId, 'd1');
    expect(loads).toEqual([
      { held: undefined, skipped: false },
      { held: 2, skipped: false },
    ]);
    expect(stale?.cached).toBeUndefined();
    expect(stale?.group).toMatchObject({ version: 3, state: other.state });
    expect(stale?.group.epochState).toBeUndefined();
    expect(states.decodeMissed(stale!.group)).toEqual(decodeStoredSession(other.state, undefined));
  });

  it('fills from the entry held when the load began, even if the cache dropped it meanwhile', async () => {
    const { store, loads, whileLoading } = watched();
    const states = new ConversationStates(store);
    const g = splitGroup('0d'.repeat(32));
    await states.save({ conversations: [g] }, { groupId: g.groupId, state });
    whileLoading(() => states.forget(g.groupId));
    const found = await states.loadGroup(g.groupId, 'd1');
    expect(loads).toEqual([{ held: 1, skipped: true }]);
    expect(found).toMatchObject({ cached: state, group: { state: g.state, epochState: g.epochState } });
  });

  it('counts each lookup as a hit, a stale copy or a cold miss, and each save that lost a race', async () => {
    const store = new MemoryRelayStore();
    const work = new WorkCounters();
    const states = new ConversationStates(store, work);
    const s = session('09'.repeat(32));
    expect(states.cached(s)).toBeUndefined();
    expect(work.get('state_cache_cold')).toBe(1);
    await states.save({ conversations: [s] }, { groupId: s.groupId, state });
    expect(states.cached(s)).toBe(state);
    expect(work.get('state_cache_hit')).toBe(1);
    // Another process wrote version 2: the copy held here is of version 1.
    expect(states.cached({ ...s, version: 2 })).toBeUndefined();
    expect(work.get('state_cache_stale')).toBe(1);
    const behind = { ...s, version: 0 };
    await expect(states.save({ conversations: [behind] })).rejects.toBeInstanceOf(StaleStateError);
    expect(work.snapshot()).toEqual({
      state_cache_hit: 1,
      state_cache_stale: 1,
      state_cache_cold: 1,
      state_epoch_reused: 0,
      stale_commit: 1,
      access_reload: 0,
    });
  });
});
