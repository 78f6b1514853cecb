// Replicas of one identity share a group's messages (issue #13): each one's cached state is behind
// the stored one for most of them. A replica whose cached state has the stored epoch part decodes
// the live part only (conversation-states.ts decodeMissed, mls.decodeGroupSessionOnEpoch); any
// other stored state is decoded whole. Two ConversationStates over one store stand for two
// replicas. Counts decodes and compares states, never time.
import { asGroupIdHex, type UnixSeconds } from '../../framework/relay/brand.js';
import { ManualClock } from '../../framework/relay/clock.js';
import { ConversationStates } from '../../framework/relay/conversation-states.js';
import { CodecError } from '../../framework/relay/errors.js';
import { newGroupMeta, serializeGroupMeta } from '../../framework/relay/group-meta.js';
import { GroupRecords, groupStateColumns, updatedRecord } from '../../framework/relay/group-records.js';
import { MemoryRelayStore } from '../../framework/relay/memory-store.js';
import {
  commitGroup,
  createMlsContext,
  decodeGroupSession,
  decodeGroupSessionOnEpoch,
  encodeGroupSession,
  encryptApplication,
  epochOf,
  processGroupMessage,
  type GroupSession,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import { unwrap } from '../../framework/relay/mls/state.js';
import type { GroupConversationRecord } from '../../framework/relay/store.js';
import { WorkCounters } from '../../framework/relay/work-counters.js';
import { buildGroup, dec, enc, type Participant } from './mls-helpers.js';

let ctx: MlsContext;
let committer: Participant;
/** The member both "replicas" are: they share its stored state. */
let member: Participant;
let lateMessage: Uint8Array;

async function send(text: string): Promise<Uint8Array> {
  const sent = await encryptApplication(ctx, committer.state, enc(text));
  committer.state = sent.state;
  return sent.message;
}

async function refresh(): Promise<Uint8Array> {
  const commit = await commitGroup(ctx, committer.state, {});
  committer.state = commit.state;
  return commit.commit;
}

beforeAll(async () => {
  ctx = await createMlsContext();
  const group = await buildGroup(ctx, 8);
  committer = group[0]!;
  member = group.at(-1)!;
  // One retained past epoch with a message from it not yet opened.
  lateMessage = await send('from the previous epoch');
  member.state = (await processGroupMessage(ctx, member.state, await refresh())).state;
}, 60_000);

const groupId = asGroupIdHex('ef'.repeat(32));
const clock = new ManualClock(1_000 as UnixSeconds);

/** A replica: its own cache and counters over the shared store. */
function replica(store: MemoryRelayStore): { records: GroupRecords; work: WorkCounters } {
  const work = new WorkCounters();
  return { records: new GroupRecords(store, clock, new ConversationStates(store, work)), work };
}

/** `r` processes `message` for the member and commits, as group-shell does. */
async function processOn(
  r: { records: GroupRecords },
  message: Uint8Array,
  digest: string,
): Promise<{ before: GroupSession; after: GroupSession; plaintext?: string }> {
  const { loaded } = (await r.records.loadForMessage(groupId, digest))!;
  const got = await processGroupMessage(ctx, loaded.state, message);
  const write = updatedRecord(loaded.record, got.state, loaded.meta, clock.now(), loaded.state);
  await r.records.save({ conversations: [write] }, got.state);
  return {
    before: loaded.state,
    after: got.state,
    ...(got.kind === 'application' ? { plaintext: dec(got.plaintext) } : {}),
  };
}

describe('a replica behind the stored group state', () => {
  it('decodes only the live part while the epoch part is its own, and the state is the one stored', async () => {
    const store = new MemoryRelayStore();
    const a = replica(store);
    const b = replica(store);
    const first: GroupConversationRecord = {
      kind: 'group',
      groupId,
      topicId: 'cd'.repeat(16),
      ...groupStateColumns(member.state),
      epoch: epochOf(member.state),
      meta: serializeGroupMeta(newGroupMeta(clock.now())),
      updatedAt: clock.now(),
      version: 0,
    };
    await a.records.save({ conversations: [first] }, member.state);

    // B, cold, decodes whole; then A is one application message behind.
    expect((await processOn(b, await send('m1'), 'd1')).plaintext).toBe('m1');
    expect(b.work.get('state_cache_cold')).toBe(1);
    const onA = await processOn(a, await send('m2'), 'd2');
    expect(onA.plaintext).toBe('m2');
    expect(a.work.get('state_cache_stale')).toBe(1);
    expect(a.work.get('state_epoch_reused')).toBe(1);
    // The epoch part's objects are the held state's; the live part's are read from the store.
    const held = unwrap(member.state).group;
    const reused = unwrap(onA.before).group;
    expect(reused.ratchetTree).toBe(held.ratchetTree);
    expect(reused.keySchedule).toBe(held.keySchedule);
    expect(reused.secretTree).not.toBe(held.secretTree);
    // What B stored, decoded whole by a reader with no cache, is the same state.
    const stored = (await store.getGroup(groupId))!;
    const whole = decodeGroupSession({ live: stored.state, epoch: stored.epochState! });
    expect(unwrap(onA.after).group.secretTree).toEqual(unwrap(whole).group.secretTree);
    // Both go on alike: the next message opens on A's state and on the whole decode.
    const m3 = await send('m3');
    expect(dec((await processGroupMessage(ctx, whole, m3)).plaintext)).toBe('m3');
    expect((await processOn(a, m3, 'd3')).plaintext).toBe('m3');
    expect(a.work.get('state_cache_hit')).toBe(1);

    // A late message from the past epoch, opened on B, moves a past secret tree: a new epoch part.
    // A must not reuse its own past trees, which still hold the secret that message used up.
    expect((await processOn(b, lateMessage, 'd4')).plaintext).toBe('from the previous epoch');
    const afterLate = (await a.records.loadForMessage(groupId, 'd5'))!.loaded.state;
    expect(a.work.get('state_epoch_reused')).toBe(1);
    await expect(processGroupMessage(ctx, afterLate, lateMessage)).rejects.toThrow();

    // A commit on B: a new epoch, decoded whole on A, which goes on in it.
    await processOn(b, await refresh(), 'd6');
    const onNewEpoch = await processOn(a, await send('m7'), 'd7');
    expect(onNewEpoch.plaintext).toBe('m7');
    expect(epochOf(onNewEpoch.after)).toBe(epochOf(committer.state));
    expect(a.work.get('state_epoch_reused')).toBe(1);
  });

  it('refuses an epoch part that is not the held one, and a live part of another epoch part', () => {
    const stored = encodeGroupSession(member.state);
    const other = encodeGroupSession(member.state);
    expect(decodeGroupSessionOnEpoch(stored, { session: member.state, epoch: other.epoch })).toBeUndefined();
    expect(() =>
      decodeGroupSessionOnEpoch(
        { live: other.live, epoch: stored.epoch },
        { session: member.state, epoch: stored.epoch },
      ),
    ).toThrow(CodecError);
  });
});
