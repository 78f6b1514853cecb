// A group's MLS state stored in two parts (issue #12): group-state-parts.ts and the record writes
// over it (group-records.ts, conversation-states.ts, memory-store.ts). Counts bytes and encodes,
// never time.
import { asGroupIdHex, type UnixSeconds } from '../../framework/relay/brand.js';
import { ManualClock } from '../../framework/relay/clock.js';
import { ConversationStates } from '../../framework/relay/conversation-states.js';
import { CodecError, StorageError } from '../../framework/relay/errors.js';
import { newGroupMeta, serializeGroupMeta } from '../../framework/relay/group-meta.js';
import { GroupRecords, groupStateColumns, updatedRecord } from '../../framework/relay/group-records.js';
import { MemoryRelayStore } from '../../framework/relay/memory-store.js';
import {
  commitGroup,
  createMlsContext,
  decodeGroupSession,
  decodeStoredSession,
  encodeGroupSession,
  encodeSession,
  encryptApplication,
  epochOf,
  processGroupMessage,
  type GroupSession,
  type MlsContext,
  type StoredGroupState,
} from '../../framework/relay/mls/index.js';
import { ByteReader } from '../../framework/relay/mls/session-bytes.js';
import { readSessionExtras, unwrap } from '../../framework/relay/mls/state.js';
import type { GroupConversationRecord, InboundCommit } from '../../framework/relay/store.js';
import { buildGroup, dec, enc, type Participant } from './mls-helpers.js';

const SIZE = 20;
/** Past epochs ts-mls retains, and PROTOCOL.md §9 accepts application messages from. */
const PAST_EPOCHS = 4;

let ctx: MlsContext;
let committer: Participant;
let member: Participant;
/** An application message the committer sent one epoch before the member's current epoch. */
let lateMessage: Uint8Array;

/** Commits `times` empty commits (key refreshes) and has `member` process each. */
async function refresh(times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    const commit = await commitGroup(ctx, committer.state, {});
    committer.state = commit.state;
    const got = await processGroupMessage(ctx, member.state, commit.commit);
    member.state = got.state;
  }
}

async function send(text: string): Promise<Uint8Array> {
  const sent = await encryptApplication(ctx, committer.state, enc(text));
  committer.state = sent.state;
  return sent.message;
}

/** True when `needle` occurs in `hay`. */
function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay.buffer, hay.byteOffset, hay.length).indexOf(Buffer.from(needle)) >= 0;
}

/**
 * `p` laid out as version 2 wrote it (the layout rows stored before this one hold): the epoch part
 * without secret trees, every tree in the live part.
 */
function asVersion2(p: StoredGroupState): StoredGroupState {
  const e = new ByteReader(p.epoch);
  e.skip(17);
  e.skip(e.u32());
  const treesAt = e.position;
  const r = new ByteReader(p.live);
  r.skip(17);
  readSessionExtras(r);
  r.skip(r.u32());
  const liveAt = r.position;
  const epoch = Uint8Array.from(p.epoch.subarray(0, treesAt));
  const live = Uint8Array.from(
    Buffer.concat([
      p.live.subarray(0, liveAt),
      Uint8Array.of(p.live[liveAt]! + p.epoch[treesAt]!),
      p.live.subarray(liveAt + 1),
      p.epoch.subarray(treesAt + 1),
    ]),
  );
  epoch[0] = live[0] = 2;
  return { live, epoch };
}

beforeAll(async () => {
  ctx = await createMlsContext();
  const group = await buildGroup(ctx, SIZE);
  committer = group[0]!;
  member = group.at(-1)!;
  await refresh(PAST_EPOCHS);
  lateMessage = await send('from the previous epoch');
  await refresh(1);
}, 60_000);

describe('encodeGroupSession / decodeGroupSession', () => {
  it('round-trips a state with retained past epochs, which still opens a late message', async () => {
    const stored = encodeGroupSession(member.state);
    expect(stored.epochChanged).toBe(true);
    const decoded = decodeGroupSession(stored);
    expect(epochOf(decoded)).toBe(epochOf(member.state));
    const late = await processGroupMessage(ctx, decoded, lateMessage);
    expect(late.kind).toBe('application');
    expect(dec(late.plaintext)).toBe('from the previous epoch');
    const now = await processGroupMessage(ctx, decoded, await send('current'));
    expect(dec(now.plaintext)).toBe('current');
  });

  it('an application message re-encodes no epoch part, and the live part alone is what changes', async () => {
    const stored = encodeGroupSession(member.state);
    const got = await processGroupMessage(ctx, member.state, await send('hello'));
    const next = encodeGroupSession(got.state, { session: member.state, stored });
    expect(next.epochChanged).toBe(false);
    // The very bytes of the basis: not encoded again.
    expect(next.epoch).toBe(stored.epoch);
    expect(next.live).not.toEqual(stored.live);
    expect(next.live.length).toBeLessThan(next.epoch.length);
    // And the pair decodes to a state that goes on working.
    const decoded = decodeGroupSession(next);
    expect(dec((await processGroupMessage(ctx, decoded, await send('again'))).plaintext)).toBe('again');
  });

  it('the live part holds the current secret tree alone: the retained past epochs do not add to it', () => {
    const stored = encodeGroupSession(member.state);
    // One tree is about 72 bytes per member (two ratchets of a 32-byte secret and a generation);
    // the five trees of the current and 4 past epochs would be five times that (plus our extras).
    const oneTree = SIZE * 72;
    expect(stored.live.length).toBeLessThan(2 * oneTree);
    expect(stored.epoch.length).toBeGreaterThan(PAST_EPOCHS * oneTree);
  });

  it('a late message from a past epoch rewrites the epoch part, leaving no copy of the secret it used up', async () => {
    const stored = encodeGroupSession(member.state);
    const lateEpoch = epochOf(member.state) - 1n;
    const pastTree = unwrap(member.state).group.historicalReceiverData.get(lateEpoch)!.secretTree;
    // The committer (leaf 0) sent it: its application ratchet moves on from this secret.
    const usedUp = Uint8Array.from(pastTree[0]!.application.secret);
    expect(contains(stored.epoch, usedUp)).toBe(true);
    const got = await processGroupMessage(ctx, member.state, lateMessage);
    expect(dec(got.plaintext)).toBe('from the previous epoch');
    const next = encodeGroupSession(got.state, { session: member.state, stored });
    expect(next.epochChanged).toBe(true);
    expect(contains(next.epoch, usedUp)).toBe(false);
    expect(contains(next.live, usedUp)).toBe(false);
    // The ts-mls section was copied, not encoded again: only the id and the trees differ.
    const tsMls = (p: StoredGroupState): Uint8Array => {
      const r = new ByteReader(p.epoch);
      r.skip(17);
      return r.long();
    };
    expect(tsMls(next)).toEqual(tsMls(stored));
    const decoded = decodeGroupSession(next);
    await expect(processGroupMessage(ctx, decoded, lateMessage)).rejects.toThrow();
    expect(dec((await processGroupMessage(ctx, decoded, await send('after'))).plaintext)).toBe('after');
  });

  it('still reads version 2 parts (every tree live), and the next write moves the past trees to the epoch part', async () => {
    const v2 = asVersion2(encodeGroupSession(member.state));
    const decoded = decodeGroupSession(v2);
    expect(dec((await processGroupMessage(ctx, decoded, lateMessage)).plaintext)).toBe(
      'from the previous epoch',
    );
    const got = await processGroupMessage(ctx, decoded, await send('on v2'));
    expect(dec(got.plaintext)).toBe('on v2');
    const next = encodeGroupSession(got.state, { session: decoded, stored: v2 });
    expect(next.epochChanged).toBe(true);
    expect(next.epoch[0]).toBe(3);
    expect(next.live.length).toBeLessThan(v2.live.length / 2);
    expect(next.live.subarray(17)).toEqual(encodeGroupSession(got.state).live.subarray(17));
    const again = decodeGroupSession(next);
    expect(dec((await processGroupMessage(ctx, again, await send('on v3'))).plaintext)).toBe('on v3');
  });

  it('a live part written from the basis is byte for byte a full encoding, retained keys of skipped generations included', async () => {
    let stored = encodeGroupSession(member.state);
    // Out of order: the member opens the third message first, so ts-mls keeps the keys of the
    // two skipped generations, then opens those.
    const messages = [await send('one'), await send('two'), await send('three')];
    for (const [m, text] of [
      [messages[2]!, 'three'],
      [messages[0]!, 'one'],
      [messages[1]!, 'two'],
    ] as const) {
      const got = await processGroupMessage(ctx, member.state, m);
      expect(dec(got.plaintext)).toBe(text);
      const next = encodeGroupSession(got.state, { session: member.state, stored });
      const full = encodeGroupSession(got.state);
      // Past the version byte and the epoch part's id, which differ per encode.
      expect(next.live.subarray(17)).toEqual(full.live.subarray(17));
      // Go on from what was stored: the skipped generations' keys must have been kept in it.
      member.state = decodeGroupSession(next);
      stored = next;
    }
    // And across a commit: the old current tree is copied as a past one.
    const commit = await commitGroup(ctx, committer.state, {});
    committer.state = commit.state;
    const got = await processGroupMessage(ctx, member.state, commit.commit);
    const next = encodeGroupSession(got.state, { session: member.state, stored });
    expect(next.epochChanged).toBe(true);
    expect(next.live.subarray(17)).toEqual(encodeGroupSession(got.state).live.subarray(17));
    member.state = got.state;
  });

  it('a commit changes the epoch part', async () => {
    const stored = encodeGroupSession(member.state);
    const commit = await commitGroup(ctx, committer.state, {});
    const got = await processGroupMessage(ctx, member.state, commit.commit);
    const next = encodeGroupSession(got.state, { session: member.state, stored });
    expect(next.epochChanged).toBe(true);
    expect(next.epoch).not.toEqual(stored.epoch);
    expect(epochOf(decodeGroupSession(next))).toBe(epochOf(member.state) + 1n);
  });

  it('refuses a live part with an epoch part it was not written with', () => {
    const a = encodeGroupSession(member.state);
    const b = encodeGroupSession(member.state);
    expect(() => decodeGroupSession({ live: a.live, epoch: b.epoch })).toThrow(CodecError);
    expect(() => decodeGroupSession({ live: a.live.subarray(0, a.live.length - 1), epoch: a.epoch })).toThrow(
      CodecError,
    );
  });

  it('still reads a state stored whole (rows written before the split)', async () => {
    const whole = decodeStoredSession(encodeSession(member.state), undefined);
    expect(epochOf(whole)).toBe(epochOf(member.state));
    expect(dec((await processGroupMessage(ctx, whole, await send('old row'))).plaintext)).toBe('old row');
  });
});

/** A MemoryRelayStore that counts the state bytes each commit hands it to write. */
class CountingStore extends MemoryRelayStore {
  readonly written: Array<{ live: number; epoch: number }> = [];

  override async commit(c: InboundCommit): Promise<void> {
    for (const r of c.conversations ?? []) {
      if (r.kind !== 'group') continue;
      this.written.push({
        live: r.state.length,
        epoch: r.epochStateUnchanged ? 0 : (r.epochState?.length ?? 0),
      });
    }
    await super.commit(c);
  }
}

describe('group records over the two parts', () => {
  const groupId = asGroupIdHex('ab'.repeat(32));
  const clock = new ManualClock(1_000 as UnixSeconds);
  const record = (state: GroupSession): GroupConversationRecord => ({
    kind: 'group',
    groupId,
    topicId: 'cd'.repeat(16),
    ...groupStateColumns(state),
    epoch: epochOf(state),
    meta: serializeGroupMeta(newGroupMeta(clock.now())),
    updatedAt: clock.now(),
    version: 0,
  });

  it('a cached application message: no decode, and only the live part is written', async () => {
    const store = new CountingStore();
    const records = new GroupRecords(store, clock, new ConversationStates(store));
    const start = member.state;
    await records.save({ conversations: [record(start)] }, start);
    expect(store.written[0]!.epoch).toBeGreaterThan(0);

    let previous = start;
    for (let i = 0; i < 3; i++) {
      const found = await records.loadForMessage(groupId, `digest-${i}`);
      // The state saved last, as it was: served from the cache, not decoded from the row.
      expect(found!.loaded.state).toBe(previous);
      const got = await processGroupMessage(ctx, found!.loaded.state, await send(`m${i}`));
      const { loaded } = found!;
      const write = updatedRecord(loaded.record, got.state, loaded.meta, clock.now(), loaded.state);
      expect(write.epochStateUnchanged).toBe(true);
      expect(write.epochState).toBe(loaded.record.epochState);
      await records.save({ conversations: [write] }, got.state);
      previous = got.state;
    }
    const perMessage = store.written.slice(1);
    expect(perMessage.map((w) => w.epoch)).toEqual([0, 0, 0]);
    for (const w of perMessage) expect(w.live).toBeLessThan(store.written[0]!.epoch);

    // What the store holds still decodes whole, by a reader with no cache.
    const stored = (await store.getGroup(groupId))!;
    const fresh = decodeStoredSession(stored.state, stored.epochState);
    expect(epochOf(fresh)).toBe(epochOf(previous));
    expect(dec((await processGroupMessage(ctx, fresh, await send('fresh'))).plaintext)).toBe('fresh');
  });

  it('a row stored whole is rewritten in two parts by its next write', async () => {
    const store = new CountingStore();
    const records = new GroupRecords(store, clock, new ConversationStates(store));
    const whole: GroupConversationRecord = { ...record(member.state), state: encodeSession(member.state) };
    delete whole.epochState;
    delete whole.epochStateUnchanged;
    await store.commit({ conversations: [whole] });
    const loaded = (await records.load(groupId))!;
    const write = updatedRecord(loaded.record, loaded.state, loaded.meta, clock.now(), loaded.state);
    expect(write.epochStateUnchanged).toBe(false);
    await records.save({ conversations: [write] }, loaded.state);
    const stored = (await store.getGroup(groupId))!;
    expect(stored.epochState).toBeDefined();
    const parts: StoredGroupState = { live: stored.state, epoch: stored.epochState! };
    expect(epochOf(decodeGroupSession(parts))).toBe(epochOf(member.state));
  });

  it('the memory store refuses "unchanged" when it holds no epoch part, and changes nothing', async () => {
    const store = new MemoryRelayStore();
    const write = { ...record(member.state), epochStateUnchanged: true };
    await expect(store.commit({ conversations: [write] })).rejects.toThrow(StorageError);
    expect(await store.getGroup(groupId)).toBeUndefined();
  });
});
