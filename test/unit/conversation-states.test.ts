// The one versioned cache and compare-and-set save (conversation-states.ts), over the memory store.
import { asGroupIdHex, type UnixSeconds } from '../../framework/relay/brand.js';
import { ConversationStates } from '../../framework/relay/conversation-states.js';
import { StaleStateError } from '../../framework/relay/errors.js';
import {
  createGroup,
  createMlsContext,
  encodeSession,
  type GroupSession,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import { MemoryRelayStore } from '../../framework/relay/memory-store.js';
import { WorkCounters } from '../../framework/relay/work-counters.js';
import type { DirectConversationRecord, GroupConversationRecord } from '../../framework/relay/store.js';
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
