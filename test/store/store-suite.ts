/**
 * The one behaviour every RelayStore must have, run against each adapter (MemoryRelayStore is the
 * reference). Adapter-specific concerns (pragmas, row locks, encryption) live in their own files.
 */
import {
  asGroupIdHex,
  asUnixSeconds,
  type GroupIdHex,
  type UnixSeconds,
} from '../../framework/relay/brand.js';
import { StaleStateError, StorageError } from '../../framework/relay/errors.js';
import { MESSAGE_SENDERS_PER_CONVERSATION } from '../../framework/relay/store.js';
import type {
  DirectConversationRecord,
  MessageSenderRecord,
  GroupConversationRecord,
  GroupRecord,
  InboundCommit,
  OutboxRecord,
  PeerRecord,
  RelayStore,
  SessionRecord,
  StoredKeyPackage,
} from '../../framework/relay/store.js';

export type MakeStore = () => Promise<{ store: RelayStore; cleanup(): Promise<void> }>;

const T0 = 1_700_000_000;
export const at = (offset = 0): UnixSeconds => asUnixSeconds(T0 + offset);
const DAY = 86400;

export const bytes = (length: number, seed = 1): Uint8Array =>
  Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
const allByteValues = () => Uint8Array.from({ length: 256 }, (_, i) => i);

/** A session whose group id is groupId(tag). */
export function session(tag: string, over: Partial<SessionRecord> = {}): SessionRecord {
  return {
    groupId: groupId(tag),
    peerId: `peer-${tag}`,
    state: bytes(200, tag.length),
    epoch: 3n,
    initiatedUnconfirmed: false,
    inboundAccess: { current: bytes(32, 7) },
    messagesSinceCommit: 0,
    unconfirmedOutgoing: [],
    updatedAt: at(),
    version: 0,
    ...over,
  };
}

/**
 * Ids shaped like the real ones: 64 hex chars for the group, 32 for its topic. The tag is hex-encoded
 * first, so distinct tags never pad to the same id ('r1' and 'r10' would).
 */
const hexTag = (tag: string) => Buffer.from(tag).toString('hex');
export const groupId = (tag: string): GroupIdHex => asGroupIdHex(hexTag(tag).padEnd(64, '0'));
export const topicId = (tag: string) => hexTag(tag).padEnd(32, 'f');

export function group(tag: string, over: Partial<GroupRecord> = {}): GroupRecord {
  return {
    groupId: groupId(tag),
    topicId: topicId(tag),
    state: bytes(300, tag.length + 11),
    epoch: 5n,
    meta: JSON.stringify({ name: `group ${tag}`, committer: 'ab'.repeat(32) }),
    updatedAt: at(),
    version: 0,
    ...over,
  };
}

/** The session as the conversation record a commit writes. */
export const direct = (s: SessionRecord): DirectConversationRecord => ({ kind: 'direct', ...s });
/** The group as the conversation record a commit writes. */
export const grouped = (g: GroupRecord): GroupConversationRecord => ({ kind: 'group', ...g });

export const peer = (userId: string, over: Partial<PeerRecord> = {}): PeerRecord => ({
  userId,
  identityKey: bytes(32, 3),
  sealKey: bytes(32, 4),
  powBits: 18,
  ...over,
});

export const keyPackage = (ref: string, over: Partial<StoredKeyPackage> = {}): StoredKeyPackage => ({
  ref,
  keyPackage: bytes(300, 5),
  privateKeyPackage: bytes(120, 6),
  createdAt: at(),
  notAfter: at(90 * DAY),
  ...over,
});

export const outbox = (id: string, over: Partial<OutboxRecord> = {}): OutboxRecord => ({
  id,
  topic: `relay/v1/inbox/${id}`,
  payload: bytes(64, id.length),
  createdAt: at(),
  ...over,
});

const ids = (rows: OutboxRecord[]) => rows.map((o) => o.id);

const isPlainBytes = (b: Uint8Array) => b instanceof Uint8Array && !Buffer.isBuffer(b);

/** Everything observable through the interface about the fixture keys the atomicity tests touch. */
async function snapshot(store: RelayStore) {
  return {
    sessions: await store.listSessions(),
    groups: await store.listGroups(),
    outbox: await store.listOutbox(),
    peer: await store.getPeer('p-new'),
    processed: await store.hasProcessed(groupId('g1'), 'd1'),
    envelope: await store.hasEnvelope('e1', at()),
    welcome: await store.hasWelcome('w1', at()),
    keyPackages: await store.listKeyPackages(),
    conversation: await store.getConversationData('c1'),
  };
}

export function describeRelayStore(name: string, makeStore: MakeStore): void {
  describe(`RelayStore: ${name}`, () => {
    let store: RelayStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await makeStore());
    });
    afterEach(async () => {
      await cleanup();
    });

    const commitSession = (s: SessionRecord, extra: InboundCommit = {}) =>
      store.commit({ ...extra, conversations: [s].map(direct) });
    const commitGroup = (g: GroupRecord, extra: InboundCommit = {}) =>
      store.commit({ ...extra, conversations: [g].map(grouped) });

    describe('identity and own bundle', () => {
      it('starts empty, saves, and replaces', async () => {
        expect(await store.loadIdentity()).toBeUndefined();
        const identity = { signingSeed: allByteValues(), sealSecret: bytes(32, 9), createdAt: at() };
        await store.saveIdentity(identity);
        const loaded = await store.loadIdentity();
        expect(loaded).toEqual(identity);
        expect(isPlainBytes(loaded!.signingSeed)).toBe(true);
        const next = { signingSeed: bytes(32, 1), sealSecret: bytes(32, 2), createdAt: at(5) };
        await store.saveIdentity(next);
        expect(await store.loadIdentity()).toEqual(next);
      });

      it('keeps one own bundle', async () => {
        expect(await store.loadOwnBundle()).toBeUndefined();
        await store.saveOwnBundle({ bytes: bytes(500), issuedAt: at(), keyPackageRef: 'aa' });
        await store.saveOwnBundle({ bytes: bytes(400, 2), issuedAt: at(10), keyPackageRef: 'bb' });
        expect(await store.loadOwnBundle()).toEqual({
          bytes: bytes(400, 2),
          issuedAt: at(10),
          keyPackageRef: 'bb',
        });
      });
    });

    describe('key packages', () => {
      const sorted = async () => (await store.listKeyPackages()).sort((a, b) => a.ref.localeCompare(b.ref));

      it('puts, replaces and lists', async () => {
        expect(await store.listKeyPackages()).toEqual([]);
        await store.putKeyPackage(keyPackage('01'));
        await store.putKeyPackage(keyPackage('02', { consumedAt: at(1), supersededAt: at(2) }));
        await store.putKeyPackage(keyPackage('01', { privateKeyPackage: bytes(10, 8) }));
        const list = await sorted();
        expect(list).toEqual([
          keyPackage('01', { privateKeyPackage: bytes(10, 8) }),
          keyPackage('02', { consumedAt: at(1), supersededAt: at(2) }),
        ]);
        expect(list[0]).not.toHaveProperty('consumedAt');
      });

      it('supersedes all but one, keeping earlier supersede times', async () => {
        await store.putKeyPackage(keyPackage('01'));
        await store.putKeyPackage(keyPackage('02', { supersededAt: at(1) }));
        await store.putKeyPackage(keyPackage('03'));
        await store.markKeyPackagesSuperseded('03', at(50));
        expect((await sorted()).map((k) => k.supersededAt)).toEqual([at(50), at(1), undefined]);
      });

      it('deletes by ref', async () => {
        for (const r of ['01', '02', '03']) await store.putKeyPackage(keyPackage(r));
        await store.deleteKeyPackages([]);
        await store.deleteKeyPackages(['01', '03', 'missing']);
        expect((await sorted()).map((k) => k.ref)).toEqual(['02']);
      });

      it('marks a consumed key package once, through commit', async () => {
        await store.putKeyPackage(keyPackage('01'));
        await store.commit({ consumedKeyPackage: { ref: '01', at: at(7) } });
        await store.commit({ consumedKeyPackage: { ref: '01', at: at(9) } });
        await store.commit({ consumedKeyPackage: { ref: 'missing', at: at(9) } });
        expect(await store.listKeyPackages()).toEqual([keyPackage('01', { consumedAt: at(7) })]);
      });
    });

    describe('peers', () => {
      it('round-trips with and without optional fields', async () => {
        expect(await store.getPeer('p1')).toBeUndefined();
        const full = peer('p1', { bundleIssuedAt: at(3), displayName: 'Ada ✓' });
        await store.putPeer(full);
        expect(await store.getPeer('p1')).toEqual(full);
        await store.putPeer(peer('p1'));
        const bare = await store.getPeer('p1');
        expect(bare).toEqual(peer('p1'));
        expect(bare).not.toHaveProperty('displayName');
      });

      it('upserts peers in a commit', async () => {
        await store.putPeer(peer('p1'));
        await store.commit({ peers: [peer('p1', { powBits: 20 }), peer('p2')] });
        expect((await store.getPeer('p1'))?.powBits).toBe(20);
        expect(await store.getPeer('p2')).toEqual(peer('p2'));
      });
    });

    describe('sessions', () => {
      it('inserts at version 0 and stores version 1', async () => {
        await commitSession(session('g1'));
        expect(await store.getSession(groupId('g1'))).toEqual({ ...session('g1'), version: 1 });
        expect(await store.getSession('nope')).toBeUndefined();
      });

      it('bumps the version on every write', async () => {
        await commitSession(session('g1'));
        await commitSession(session('g1', { version: 1, messagesSinceCommit: 4 }));
        await commitSession(session('g1', { version: 2, epoch: 4n }));
        const s = await store.getSession(groupId('g1'));
        expect(s?.version).toBe(3);
        expect(s?.epoch).toBe(4n);
      });

      it('rejects a stale version with StaleStateError naming both versions', async () => {
        await commitSession(session('g1'));
        await commitSession(session('g1', { version: 1 }));
        const err = await commitSession(session('g1', { version: 1 })).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StaleStateError);
        expect(err).toMatchObject({
          code: 'STORAGE',
          groupId: groupId('g1'),
          expectedVersion: 1,
          storedVersion: 2,
        });
        await expect(commitSession(session('g1', { version: 0 }))).rejects.toBeInstanceOf(StaleStateError);
        await expect(commitSession(session('g2', { version: 3 }))).rejects.toMatchObject({
          storedVersion: 0,
        });
        expect((await store.getSession(groupId('g1')))?.version).toBe(2);
        expect(await store.getSession(groupId('g2'))).toBeUndefined();
      });

      it('lets exactly one of two concurrent commits of the same version win', async () => {
        await commitSession(session('g1'));
        const results = await Promise.allSettled([
          commitSession(session('g1', { version: 1, epoch: 10n })),
          commitSession(session('g1', { version: 1, epoch: 20n })),
        ]);
        const rejected = results.filter((r) => r.status === 'rejected');
        expect(rejected).toHaveLength(1);
        expect((rejected[0] as PromiseRejectedResult).reason).toBeInstanceOf(StaleStateError);
        expect((await store.getSession(groupId('g1')))?.version).toBe(2);
      });

      it('finds a session by peer and lists all', async () => {
        await store.commit({ conversations: [session('g1'), session('g2', { peerId: 'bob' })].map(direct) });
        expect((await store.getSessionByPeer('bob'))?.groupId).toBe(groupId('g2'));
        expect(await store.getSessionByPeer('nobody')).toBeUndefined();
        const all = (await store.listSessions()).sort((a, b) => a.groupId.localeCompare(b.groupId));
        expect(all).toEqual([
          { ...session('g1'), version: 1 },
          { ...session('g2', { peerId: 'bob' }), version: 1 },
        ]);
      });

      it('deletes sessions, and replaces a group deleted in the same commit', async () => {
        await store.commit({ conversations: [session('g1'), session('g2')].map(direct) });
        await store.commit({ deleteConversations: [groupId('g1'), groupId('missing')] });
        expect(await store.getSession(groupId('g1'))).toBeUndefined();
        await store.commit({
          deleteConversations: [groupId('g2')],
          conversations: [session('g2', { version: 1, epoch: 9n })].map(direct),
        });
        expect(await store.getSession(groupId('g2'))).toMatchObject({ version: 2, epoch: 9n });
        await store.commit({
          deleteConversations: [groupId('g2')],
          conversations: [session('g3', { peerId: 'peer-g2' })].map(direct),
        });
        expect((await store.getSessionByPeer('peer-g2'))?.groupId).toBe(groupId('g3'));
      });

      it('round-trips epochs above 2^53 exactly', async () => {
        const big = 2n ** 53n + 1n;
        const huge = 2n ** 63n - 1n;
        await store.commit({
          conversations: [session('g1', { epoch: big }), session('g2', { epoch: huge })].map(direct),
        });
        expect((await store.getSession(groupId('g1')))?.epoch).toBe(big);
        expect((await store.getSession(groupId('g2')))?.epoch).toBe(huge);
        expect(typeof (await store.getSession(groupId('g1')))?.epoch).toBe('bigint');
      });

      it('round-trips every byte value, optional previous access key and outgoing texts', async () => {
        const s = session('g1', {
          state: allByteValues(),
          initiatedUnconfirmed: true,
          inboundAccess: { current: bytes(32, 1), previous: new Uint8Array(32) },
          messagesSinceCommit: 99,
          unconfirmedOutgoing: ['hi', 'naïve "quotes" \\ and\nnewlines', '🙂'],
        });
        await commitSession(s);
        const loaded = await store.getSession(groupId('g1'));
        expect(loaded).toEqual({ ...s, version: 1 });
        expect(isPlainBytes(loaded!.state)).toBe(true);
        expect(isPlainBytes(loaded!.inboundAccess.previous!)).toBe(true);
        await commitSession(session('g1', { version: 1 }));
        expect((await store.getSession(groupId('g1')))?.inboundAccess).toEqual({ current: bytes(32, 7) });
      });
    });

    describe('conversations of either kind', () => {
      it('reads a session and a group through one get and one load-for-message', async () => {
        const s = session('g1', { peerId: 'p1' });
        await store.commit({
          conversations: [direct(s), grouped(group('a1'))],
          peers: [peer('p1')],
          processed: { groupId: groupId('a1'), digest: 'd1', at: at() },
        });
        expect(await store.getConversation(groupId('g1'))).toEqual({ kind: 'direct', ...s, version: 1 });
        expect(await store.getConversation(groupId('a1'))).toEqual({
          kind: 'group',
          ...group('a1'),
          version: 1,
        });
        expect(await store.getConversation('nope')).toBeUndefined();

        expect(await store.loadConversationForMessage(groupId('g1'), 'd1')).toEqual({
          conversation: { kind: 'direct', ...s, version: 1 },
          processed: false,
          peer: peer('p1'),
        });
        const loaded = await store.loadConversationForMessage(groupId('a1'), 'd1');
        expect(loaded).toEqual({
          conversation: { kind: 'group', ...group('a1'), version: 1 },
          processed: true,
        });
        expect(loaded).not.toHaveProperty('peer');
        expect(await store.loadConversationForMessage('nope', 'd1')).toBeUndefined();
        // The per-kind reads are views of it.
        expect(await store.loadForMessage(groupId('a1'), 'd1')).toBeUndefined();
        expect(await store.loadGroupForMessage(groupId('g1'), 'd1')).toBeUndefined();
        expect((await store.loadGroupForMessage(groupId('a1'), 'd1'))?.processed).toBe(true);
      });

      it('loads a direct conversation whose peer is not stored without a peer', async () => {
        await store.commit({ conversations: [session('g1', { peerId: 'unknown' })].map(direct) });
        const loaded = await store.loadConversationForMessage(groupId('g1'), 'd1');
        expect(loaded?.conversation.kind).toBe('direct');
        expect(loaded?.peer).toBeUndefined();
      });
    });

    describe('groups', () => {
      it('inserts at version 0 and reads back by id, by topic and in a list ordered by group id', async () => {
        expect(await store.listGroups()).toEqual([]);
        await store.commit({ conversations: [group('b2'), group('a1')].map(grouped) });
        expect(await store.getGroup(groupId('a1'))).toEqual({ ...group('a1'), version: 1 });
        expect(await store.getGroupByTopic(topicId('b2'))).toEqual({ ...group('b2'), version: 1 });
        expect(await store.getGroup(groupId('c3'))).toBeUndefined();
        expect(await store.getGroupByTopic(topicId('c3'))).toBeUndefined();
        expect(await store.getGroupByTopic(groupId('a1'))).toBeUndefined();
        expect(await store.listGroups()).toEqual([
          { ...group('a1'), version: 1 },
          { ...group('b2'), version: 1 },
        ]);
      });

      it('bumps the version on every write', async () => {
        await commitGroup(group('a1'));
        await commitGroup(group('a1', { version: 1, meta: '{"n":2}' }));
        await commitGroup(group('a1', { version: 2, epoch: 6n }));
        expect(await store.getGroup(groupId('a1'))).toEqual(
          group('a1', { version: 3, epoch: 6n, meta: group('a1').meta }),
        );
      });

      it('rejects a stale version with StaleStateError naming both versions', async () => {
        await commitGroup(group('a1'));
        await commitGroup(group('a1', { version: 1 }));
        const err = await commitGroup(group('a1', { version: 1, epoch: 99n })).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StaleStateError);
        expect(err).toMatchObject({
          code: 'STORAGE',
          groupId: groupId('a1'),
          expectedVersion: 1,
          storedVersion: 2,
        });
        // Version 0 means "must not exist yet".
        await expect(commitGroup(group('a1'))).rejects.toMatchObject({
          expectedVersion: 0,
          storedVersion: 2,
        });
        await expect(commitGroup(group('b2', { version: 3 }))).rejects.toMatchObject({ storedVersion: 0 });
        expect(await store.getGroup(groupId('a1'))).toEqual({ ...group('a1'), version: 2 });
        expect(await store.getGroup(groupId('b2'))).toBeUndefined();
      });

      it('lets exactly one of two concurrent commits of the same group version win', async () => {
        await commitGroup(group('a1'));
        const results = await Promise.allSettled([
          commitGroup(group('a1', { version: 1, epoch: 10n }), { outbox: [outbox('x')] }),
          commitGroup(group('a1', { version: 1, epoch: 20n }), { outbox: [outbox('y')] }),
        ]);
        const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        expect(rejected).toHaveLength(1);
        expect(rejected[0]!.reason).toBeInstanceOf(StaleStateError);
        expect((await store.getGroup(groupId('a1')))?.version).toBe(2);
        expect(await store.listOutbox()).toHaveLength(1);
      });

      it('deletes groups, and replaces a group deleted in the same commit', async () => {
        await store.commit({ conversations: [group('a1'), group('b2'), group('c3')].map(grouped) });
        await store.commit({ deleteConversations: [groupId('a1'), groupId('missing')] });
        expect(await store.getGroup(groupId('a1'))).toBeUndefined();
        expect(await store.getGroupByTopic(topicId('a1'))).toBeUndefined();
        expect((await store.listGroups()).map((g) => g.groupId)).toEqual([groupId('b2'), groupId('c3')]);
        // The same version rule as an update: the record must have been read at the stored version.
        await store.commit({
          deleteConversations: [groupId('b2')],
          conversations: [group('b2', { version: 1, epoch: 9n })].map(grouped),
        });
        expect(await store.getGroup(groupId('b2'))).toMatchObject({ version: 2, epoch: 9n });
        await store.commit({
          deleteConversations: [groupId('c3')],
          conversations: [group('d4')].map(grouped),
        });
        expect((await store.listGroups()).map((g) => g.groupId)).toEqual([groupId('b2'), groupId('d4')]);
        // A deleted group can be joined again from scratch.
        await commitGroup(group('a1'));
        expect((await store.getGroup(groupId('a1')))?.version).toBe(1);
      });

      it('round-trips epochs above 2^53, every byte value and arbitrary meta text', async () => {
        const huge = 2n ** 63n - 1n;
        const meta = JSON.stringify({ name: 'naïve "quotes" \\ and\nnewlines 🙂', members: [] });
        await commitGroup(group('a1', { epoch: huge, state: allByteValues(), meta }));
        const loaded = await store.getGroup(groupId('a1'));
        expect(loaded).toEqual(group('a1', { epoch: huge, state: allByteValues(), meta, version: 1 }));
        expect(typeof loaded?.epoch).toBe('bigint');
        expect(isPlainBytes(loaded!.state)).toBe(true);
      });

      // Issue #12: a group's epoch part is written only when it changed.
      it('writes a group epoch state when given, keeps it when unchanged, and drops it when absent', async () => {
        const epochState = bytes(5000, 7);
        await commitGroup(group('a1', { epochState }));
        expect(await store.getGroup(groupId('a1'))).toEqual(group('a1', { epochState, version: 1 }));
        // Unchanged: the record may carry any bytes (or none); the stored ones stay. Through the
        // one-statement path too (a processed mark and a replay entry, as a message writes).
        const live = bytes(200, 9);
        await store.commit({
          conversations: [grouped(group('a1', { version: 1, state: live, epochStateUnchanged: true }))],
          processed: { groupId: groupId('a1'), digest: 'd1', at: at() },
          envelope: { digest: 'e1', expiresAt: at(60) },
        });
        expect(await store.getGroup(groupId('a1'))).toEqual(
          group('a1', { state: live, epochState, version: 2 }),
        );
        const loaded = await store.loadGroupForMessage(groupId('a1'), 'd1');
        expect(loaded).toEqual({
          group: group('a1', { state: live, epochState, version: 2 }),
          processed: true,
        });
        // A new epoch part replaces it; a record without one (a state stored whole) clears it.
        const next = bytes(4000, 8);
        await commitGroup(group('a1', { version: 2, epochState: next, epochStateUnchanged: false }));
        expect((await store.getGroup(groupId('a1')))?.epochState).toEqual(next);
        await commitGroup(group('a1', { version: 3 }));
        expect(await store.getGroup(groupId('a1'))).toEqual(group('a1', { version: 4 }));
      });

      it('refuses "epoch state unchanged" for a group it does not hold, changing nothing', async () => {
        await expect(commitGroup(group('a1', { epochStateUnchanged: true }))).rejects.toBeInstanceOf(
          StorageError,
        );
        expect(await store.getGroup(groupId('a1'))).toBeUndefined();
      });

      // One conversations table (issue 11): a group id names one conversation, of one kind.
      it('keeps one conversation per group id: reads and saves see only its kind, a delete takes either', async () => {
        const id = groupId('a1');
        await store.commit({ conversations: [direct(session('a1', { groupId: id }))] });
        expect(await store.getGroup(id)).toBeUndefined();
        expect(await store.loadGroupForMessage(id, 'd1')).toBeUndefined();
        expect(await store.listGroups()).toEqual([]);
        const before = await snapshot(store);
        await expect(store.commit({ conversations: [grouped(group('a1'))] })).rejects.toBeInstanceOf(
          StaleStateError,
        );
        const err = await store
          .commit({ conversations: [grouped(group('a1', { version: 1 }))] })
          .catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'STORAGE' });
        expect(err).not.toBeInstanceOf(StaleStateError);
        expect(await snapshot(store)).toEqual(before);
        expect((await store.getSession(id))?.version).toBe(1);

        // One delete for both kinds: the session goes, and the id can be taken by a group.
        await store.commit({ deleteConversations: [id] });
        expect(await store.getSession(id)).toBeUndefined();
        expect(await store.getConversation(id)).toBeUndefined();
        await store.commit({ conversations: [grouped(group('a1'))] });
        await store.commit({ conversations: [grouped(group('a1', { version: 1 }))] });
        expect((await store.getGroup(id))?.version).toBe(2);
        expect(await store.getSession(id)).toBeUndefined();
        expect(await store.loadForMessage(id, 'd1')).toBeUndefined();
        await store.commit({ deleteConversations: [id] });
        expect(await store.getConversation(id)).toBeUndefined();
        expect(await store.listGroups()).toEqual([]);
      });

      it('refuses a second group on the same topic, applying nothing', async () => {
        await commitGroup(group('a1'));
        const before = await snapshot(store);
        const err = await store
          .commit({
            conversations: [group('b2', { topicId: topicId('a1') })].map(grouped),
            outbox: [outbox('o1')],
            processed: { groupId: groupId('g1'), digest: 'd1', at: at() },
          })
          .catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'STORAGE' });
        expect(err).not.toBeInstanceOf(StaleStateError);
        expect(await snapshot(store)).toEqual(before);
      });

      it('does not alias the records it is given or returns', async () => {
        const g = group('a1');
        await commitGroup(g);
        g.state[0] = 0xee;
        const loaded = (await store.getGroup(groupId('a1')))!;
        expect(loaded.state[0]).toBe(group('a1').state[0]);
        loaded.state[0] = 0xee;
        expect((await store.listGroups())[0]!.state[0]).toBe(group('a1').state[0]);
      });
    });

    describe('loadForMessage', () => {
      it('reads the session, the processed check and the peer at once', async () => {
        await store.commit({
          conversations: [session('g1', { peerId: 'p1' }), session('g2', { peerId: 'nobody' })].map(direct),
          peers: [peer('p1', { displayName: 'P', bundleIssuedAt: at(3) })],
          processed: { groupId: groupId('g1'), digest: 'd1', at: at() },
        });
        expect(await store.loadForMessage(groupId('g1'), 'd1')).toEqual({
          session: { ...session('g1', { peerId: 'p1' }), version: 1 },
          processed: true,
          peer: peer('p1', { displayName: 'P', bundleIssuedAt: at(3) }),
        });
        expect(await store.loadForMessage(groupId('g1'), 'd2')).toMatchObject({ processed: false });
        expect(await store.loadForMessage(groupId('g2'), 'd1')).toEqual({
          session: { ...session('g2', { peerId: 'nobody' }), version: 1 },
          processed: false,
          peer: undefined,
        });
        expect(await store.loadForMessage('missing', 'd1')).toBeUndefined();
      });

      it('with an envelope, checks the replay cache in the same read, as hasEnvelope does', async () => {
        await store.commit({
          conversations: [session('g1', { peerId: 'p1' })].map(direct),
          envelope: { digest: 'e1', expiresAt: at(100) },
        });
        const seen = (digest: string, now: number) =>
          store.loadForMessage(groupId('g1'), 'd1', { digest, now: at(now) });
        expect(await seen('e1', 100)).toMatchObject({ processed: false, envelopeSeen: true });
        expect(await seen('e1', 101)).toMatchObject({ envelopeSeen: false });
        expect(await seen('e2', 0)).toMatchObject({ envelopeSeen: false });
        expect(await store.loadForMessage('missing', 'd1', { digest: 'e1', now: at() })).toBeUndefined();
        expect(await store.loadForMessage(groupId('g1'), 'd1')).not.toHaveProperty('envelopeSeen');
      });

      it('loadGroupForMessage reads the group and the processed check at once', async () => {
        const g = group('a');
        await store.commit({
          conversations: [g].map(grouped),
          processed: { groupId: g.groupId, digest: 'd1', at: at() },
        });
        expect(await store.loadGroupForMessage(g.groupId, 'd1')).toEqual({
          group: { ...g, version: 1 },
          processed: true,
        });
        expect(await store.loadGroupForMessage(g.groupId, 'd2')).toMatchObject({ processed: false });
        expect(await store.loadGroupForMessage(group('b').groupId, 'd1')).toBeUndefined();
      });
    });

    describe('dedupe and replay cache', () => {
      it('records processed digests and prunes them after 7 days', async () => {
        await store.commit({ processed: { groupId: groupId('g1'), digest: 'd1', at: at() } });
        expect(await store.hasProcessed(groupId('g1'), 'd1')).toBe(true);
        expect(await store.hasProcessed(groupId('g1'), 'd2')).toBe(false);
        expect(await store.hasProcessed(groupId('g2'), 'd1')).toBe(false);
        await store.prune(at(7 * DAY));
        expect(await store.hasProcessed(groupId('g1'), 'd1')).toBe(true);
        await store.prune(at(7 * DAY + 1));
        expect(await store.hasProcessed(groupId('g1'), 'd1')).toBe(false);
      });

      it('answers envelopes until they expire and prunes expired ones', async () => {
        await store.commit({ envelope: { digest: 'e1', expiresAt: at(100) } });
        expect(await store.hasEnvelope('e1', at(100))).toBe(true);
        expect(await store.hasEnvelope('e1', at(101))).toBe(false);
        expect(await store.hasEnvelope('e2', at())).toBe(false);
        await store.prune(at(100));
        expect(await store.hasEnvelope('e1', at(50))).toBe(true);
        await store.prune(at(101));
        expect(await store.hasEnvelope('e1', at(50))).toBe(false);
      });

      it('answers welcomes seen since a time and prunes them after 7 days', async () => {
        await store.commit({ welcome: { digest: 'w1', at: at(10) } });
        expect(await store.hasWelcome('w1', at(10))).toBe(true);
        expect(await store.hasWelcome('w1', at(11))).toBe(false);
        await store.prune(at(10 + 7 * DAY + 1));
        expect(await store.hasWelcome('w1', at(0))).toBe(false);
      });
    });

    describe('message sender index (PROTOCOL.md §8 checks)', () => {
      const entry = (tag: string, messageId: string, sender: string, offset = 0): MessageSenderRecord => ({
        groupId: groupId(tag),
        messageId,
        sender,
        at: at(offset),
      });

      it('answers the senders of known ids per conversation; the first entry for an id wins', async () => {
        await commitSession(session('g1'), {
          messageSenders: [entry('g1', 'm1', 'alice'), entry('g2', 'm1', 'bob')],
        });
        await commitSession(session('g1', { version: 1 }), {
          messageSenders: [entry('g1', 'm1', 'mallory')],
        });
        expect(await store.messageSenders(groupId('g1'), ['m1', 'unknown'])).toEqual(
          new Map([['m1', 'alice']]),
        );
        expect(await store.messageSenders(groupId('g2'), ['m1'])).toEqual(new Map([['m1', 'bob']]));
        expect(await store.messageSenders(groupId('g1'), [])).toEqual(new Map());
      });

      it('writes nothing when the commit is stale', async () => {
        await commitSession(session('g1'));
        await expect(
          commitSession(session('g1', { version: 0 }), { messageSenders: [entry('g1', 'm1', 'alice')] }),
        ).rejects.toBeInstanceOf(StaleStateError);
        expect(await store.messageSenders(groupId('g1'), ['m1'])).toEqual(new Map());
      });

      it(`keeps the newest ${MESSAGE_SENDERS_PER_CONVERSATION} ids of a conversation, through either write path`, async () => {
        const many = Array.from({ length: MESSAGE_SENDERS_PER_CONVERSATION + 2 }, (_, i) =>
          entry('g1', `m${i}`, 'alice'),
        );
        await commitSession(session('g1'), { messageSenders: [...many, entry('g2', 'other', 'bob')] });
        const known = async (ids: string[]) =>
          [...(await store.messageSenders(groupId('g1'), ids)).keys()].sort();
        expect(await known(['m0', 'm1', 'm2', `m${MESSAGE_SENDERS_PER_CONVERSATION + 1}`])).toEqual(
          [`m${MESSAGE_SENDERS_PER_CONVERSATION + 1}`, 'm2'].sort(),
        );
        // An update of the stored row with one outbox row: Postgres writes it as one statement.
        await commitSession(session('g1', { version: 1 }), {
          outbox: [outbox('o1')],
          processed: { groupId: groupId('g1'), digest: 'd1', at: at() },
          messageSenders: [entry('g1', 'new1', 'alice'), entry('g1', 'new2', 'alice')],
        });
        expect(await known(['m2', 'm3', 'm4', 'new1', 'new2'])).toEqual(['m4', 'new1', 'new2']);
        expect(await store.messageSenders(groupId('g2'), ['other'])).toEqual(new Map([['other', 'bob']]));
      });

      it('prunes entries after 7 days and deletes them with their conversation', async () => {
        await commitSession(session('g1'), {
          messageSenders: [entry('g1', 'old', 'alice'), entry('g1', 'new', 'alice', DAY)],
        });
        await commitSession(session('g2'), { messageSenders: [entry('g2', 'm', 'bob', DAY)] });
        await store.prune(at(7 * DAY + 1));
        expect([...(await store.messageSenders(groupId('g1'), ['old', 'new'])).keys()]).toEqual(['new']);
        await store.commit({ deleteConversations: [groupId('g2')] });
        expect(await store.messageSenders(groupId('g2'), ['m'])).toEqual(new Map());
      });
    });

    describe('outbox', () => {
      it('lists rows in commit order across commits, with a limit', async () => {
        await store.commit({ outbox: [outbox('c'), outbox('a')] });
        await store.commit({ outbox: [outbox('b')] });
        await store.commit({ outbox: [outbox('z'), outbox('y')] });
        expect(ids(await store.listOutbox())).toEqual(['c', 'a', 'b', 'z', 'y']);
        expect(ids(await store.listOutbox(2))).toEqual(['c', 'a']);
      });

      it('deletes acknowledged rows and keeps appending after them', async () => {
        await store.commit({ outbox: [outbox('1'), outbox('2'), outbox('3')] });
        await store.deleteOutbox(['1', '3', 'missing']);
        await store.deleteOutbox([]);
        await store.commit({ outbox: [outbox('4')] });
        expect(ids(await store.listOutbox())).toEqual(['2', '4']);
      });

      it('round-trips awaitAck, reading false back as absent', async () => {
        await store.commit({
          outbox: [outbox('w', { awaitAck: true }), outbox('f', { awaitAck: false }), outbox('u')],
        });
        await commitSession(session('g1'));
        // The single-row outbox of an inbound message, which Postgres folds into one statement.
        await commitSession(session('g1', { version: 1 }), { outbox: [outbox('s', { awaitAck: true })] });
        await commitGroup(group('a1'));
        await commitGroup(group('a1', { version: 1 }), { outbox: [outbox('g', { awaitAck: true })] });
        const listed = await store.listOutbox();
        expect(listed).toEqual([
          outbox('w', { awaitAck: true }),
          outbox('f'),
          outbox('u'),
          outbox('s', { awaitAck: true }),
          outbox('g', { awaitAck: true }),
        ]);
        expect(listed[0]!.awaitAck).toBe(true);
        expect(listed[1]).not.toHaveProperty('awaitAck');
        expect(listed[2]).not.toHaveProperty('awaitAck');
      });

      it('round-trips optional publish options and payload bytes', async () => {
        const rows = [
          outbox('r', { retain: true, messageExpirySeconds: 3600, payload: allByteValues() }),
          outbox('n', { retain: false, messageExpirySeconds: 0 }),
          outbox('u'),
        ];
        await store.commit({ outbox: rows });
        const listed = await store.listOutbox();
        expect(listed).toEqual(rows);
        expect(listed[2]).not.toHaveProperty('retain');
        expect(isPlainBytes(listed[0]!.payload)).toBe(true);
      });

      it('quarantines a row with the rows that depend on it; the others stay listed in order', async () => {
        await store.commit({
          outbox: [
            outbox('before'),
            outbox('commit', { awaitAck: true }),
            outbox('welcome1', { dependsOn: 'commit' }),
            outbox('welcome2', { dependsOn: 'commit' }),
          ],
        });
        // The single-row outbox of an inbound message (folded on Postgres) keeps dependsOn too.
        await commitSession(session('g1'));
        await commitSession(session('g1', { version: 1 }), { outbox: [outbox('later', { dependsOn: 'x' })] });
        expect((await store.listOutbox())[2]).toEqual(outbox('welcome1', { dependsOn: 'commit' }));
        await store.quarantineOutbox(['commit'], at());
        await store.quarantineOutbox([], at());
        expect(ids(await store.listOutbox())).toEqual(['before', 'later']);
        expect((await store.listOutbox())[1]).toEqual(outbox('later', { dependsOn: 'x' }));
        await store.commit({ outbox: [outbox('after')] });
        await store.deleteOutbox(['before']);
        expect(ids(await store.listOutbox())).toEqual(['later', 'after']);
      });
      it("lists one replica's rows with the rows of no replica, in commit order", async () => {
        await store.commit({ outbox: [outbox('a1', { replica: 'bots/a' }), outbox('n1')] });
        await store.commit({ outbox: [outbox('b1', { replica: 'bots/b' })] });
        await commitSession(session('g1'));
        // The single-row outbox of an inbound message (folded on Postgres) keeps its replica too.
        await commitSession(session('g1', { version: 1 }), { outbox: [outbox('a2', { replica: 'bots/a' })] });
        expect(ids(await store.listOutbox(100, 'bots/a'))).toEqual(['a1', 'n1', 'a2']);
        expect(ids(await store.listOutbox(100, 'bots/b'))).toEqual(['n1', 'b1']);
        expect(ids(await store.listOutbox(2, 'bots/a'))).toEqual(['a1', 'n1']);
        expect(ids(await store.listOutbox())).toEqual(['a1', 'n1', 'b1', 'a2']);
        expect((await store.listOutbox(100, 'bots/a'))[0]).toEqual(outbox('a1', { replica: 'bots/a' }));
        expect((await store.listOutbox())[1]).not.toHaveProperty('replica');
        expect(await store.listOutboxOwners()).toEqual(['bots/a', 'bots/b']);
      });

      it("claims all of one replica's unquarantined rows at once, keeping their order", async () => {
        await store.commit({
          outbox: [
            outbox('d1', { replica: 'bots/dead' }),
            outbox('m1', { replica: 'bots/me' }),
            outbox('d2', { replica: 'bots/dead', awaitAck: true }),
            outbox('dq', { replica: 'bots/dead' }),
            outbox('o1', { replica: 'bots/other' }),
            outbox('d3', { replica: 'bots/dead', dependsOn: 'd2' }),
          ],
        });
        await store.quarantineOutbox(['dq'], at());
        expect(await store.claimOutbox('bots/dead', 'bots/me')).toBe(3);
        expect(ids(await store.listOutbox(100, 'bots/me'))).toEqual(['d1', 'm1', 'd2', 'd3']);
        expect((await store.listOutbox(100, 'bots/me'))[3]).toEqual(
          outbox('d3', { replica: 'bots/me', dependsOn: 'd2' }),
        );
        expect(ids(await store.listOutbox(100, 'bots/other'))).toEqual(['o1']);
        expect(await store.listOutboxOwners()).toEqual(['bots/me', 'bots/other']);
        // Nothing left to claim: a second claimer moves nothing.
        expect(await store.claimOutbox('bots/dead', 'bots/other')).toBe(0);
        expect(await store.claimOutbox('bots/me', 'bots/me')).toBe(0);
        expect(ids(await store.listOutbox(100, 'bots/me'))).toEqual(['d1', 'm1', 'd2', 'd3']);
      });
    });

    describe('parked inbound messages', () => {
      const parked = (id: string, seed = 1) => ({
        id,
        topic: `relay/v1/inbox/${id}`,
        payload: bytes(40, seed),
        arrivedAt: at(seed),
      });

      it('lists in the order parked, with a limit, and deletes by id', async () => {
        await store.parkInbound(parked('c', 3));
        await store.parkInbound({ ...parked('a', 1), payload: allByteValues() });
        await store.parkInbound(parked('b', 2));
        const listed = await store.listParkedInbound();
        expect(listed).toEqual([
          parked('c', 3),
          { ...parked('a', 1), payload: allByteValues() },
          parked('b', 2),
        ]);
        expect(isPlainBytes(listed[0]!.payload)).toBe(true);
        expect((await store.listParkedInbound(1)).map((p) => p.id)).toEqual(['c']);
        await store.deleteParkedInbound('a');
        await store.deleteParkedInbound('missing');
        await store.parkInbound(parked('d', 4));
        expect((await store.listParkedInbound()).map((p) => p.id)).toEqual(['c', 'b', 'd']);
      });
    });

    describe('group summaries', () => {
      it('lists every group without its state, in group id order', async () => {
        await commitGroup(group('b2'));
        await commitGroup(group('a1'));
        expect(await store.listGroupSummaries()).toEqual(
          ['a1', 'b2'].map((t) => ({ groupId: groupId(t), topicId: topicId(t), meta: group(t).meta })),
        );
      });
    });

    describe('session access and expiry', () => {
      it("lists every session's access keys in group id order", async () => {
        await commitSession(
          session('g2', { inboundAccess: { current: bytes(32, 2), previous: bytes(32, 3) } }),
        );
        await commitSession(session('g1'));
        expect(await store.listSessionAccess()).toEqual([
          { groupId: groupId('g1'), inboundAccess: { current: bytes(32, 7) } },
          { groupId: groupId('g2'), inboundAccess: { current: bytes(32, 2), previous: bytes(32, 3) } },
        ]);
      });

      it('round-trips unusedSince and clears it when a write leaves it out', async () => {
        await commitSession(session('g1', { unusedSince: at(5) }));
        expect((await store.getSession(groupId('g1')))?.unusedSince).toBe(at(5));
        await commitSession(session('g1', { version: 1 }));
        expect(await store.getSession(groupId('g1'))).not.toHaveProperty('unusedSince');
      });

      it('deletes only sessions unused since before the cut-off', async () => {
        await commitSession(session('old', { unusedSince: at(0) }));
        await commitSession(session('edge', { unusedSince: at(100) }));
        await commitSession(session('used'));
        await commitSession(session('fresh', { unusedSince: at(200) }));
        expect(await store.deleteUnusedSessions(at(101))).toEqual([groupId('edge'), groupId('old')]);
        expect(await store.deleteUnusedSessions(at(101))).toEqual([]);
        expect((await store.listSessionAccess()).map((s) => s.groupId)).toEqual([
          groupId('fresh'),
          groupId('used'),
        ]);
      });
    });

    describe('conversation data', () => {
      it('stores and replaces JSON per conversation', async () => {
        expect(await store.getConversationData('c1')).toBeUndefined();
        await store.commit({ conversationData: [{ conversationId: 'c1', json: '{"n":1}' }] });
        await store.commit({
          conversationData: [
            { conversationId: 'c1', json: '{"n":2,"s":"ü"}' },
            { conversationId: 'c2', json: '[]' },
          ],
        });
        expect(await store.getConversationData('c1')).toBe('{"n":2,"s":"ü"}');
        expect(await store.getConversationData('c2')).toBe('[]');
      });

      it('the JSON text null deletes an entry', async () => {
        await store.commit({ conversationData: [{ conversationId: 'gone', json: '{"a":1}' }] });
        await store.commit({ conversationData: [{ conversationId: 'gone', json: 'null' }] });
        expect(await store.getConversationData('gone')).toBeUndefined();
        expect(await store.listConversationData('gone')).toEqual([]);
      });

      it('lists by literal prefix, in id order', async () => {
        await store.commit({
          conversationData: [
            { conversationId: 'jobs:b', json: '2' },
            { conversationId: 'jobs:a', json: '1' },
            { conversationId: 'jobsX', json: 'x' },
            { conversationId: 'job%:c', json: 'y' },
          ],
        });
        expect(await store.listConversationData('jobs:')).toEqual([
          { conversationId: 'jobs:a', json: '1' },
          { conversationId: 'jobs:b', json: '2' },
        ]);
        expect(await store.listConversationData('job%')).toEqual([{ conversationId: 'job%:c', json: 'y' }]);
        expect(await store.listConversationData('none:')).toEqual([]);
      });
    });

    describe('commit atomicity', () => {
      it('applies nothing when a session in the middle is stale', async () => {
        await commitSession(session('g-stale'));
        await store.putKeyPackage(keyPackage('kp'));
        await store.commit({ outbox: [outbox('before')] });
        const before = await snapshot(store);

        const err = await store
          .commit({
            conversations: [session('g-new'), session('g-stale', { version: 0 }), session('g-new2')].map(
              direct,
            ),
            deleteConversations: [groupId('g-stale')],
            peers: [peer('p-new')],
            processed: { groupId: groupId('g1'), digest: 'd1', at: at() },
            envelope: { digest: 'e1', expiresAt: at(60) },
            welcome: { digest: 'w1', at: at() },
            consumedKeyPackage: { ref: 'kp', at: at(1) },
            outbox: [outbox('o1'), outbox('o2')],
            conversationData: [{ conversationId: 'c1', json: '{}' }],
          })
          .catch((e: unknown) => e);

        expect(err).toBeInstanceOf(StaleStateError);
        expect(await snapshot(store)).toEqual(before);
        // The store stays usable after the rolled-back transaction.
        await store.commit({ outbox: [outbox('after')] });
        expect(ids(await store.listOutbox())).toEqual(['before', 'after']);
      });

      it('applies nothing when a group is stale: no sessions, groups, outbox rows or anything else', async () => {
        await commitSession(session('s-old'));
        await store.commit({ conversations: [group('a1'), group('b2'), group('c3')].map(grouped) });
        await commitGroup(group('b2', { version: 1 }));
        await store.putKeyPackage(keyPackage('kp'));
        await store.commit({ outbox: [outbox('before')] });
        const before = await snapshot(store);

        const err = await store
          .commit({
            conversations: [
              ...[session('s-new'), session('s-old', { version: 1, epoch: 8n })].map(direct),
              ...[group('a1', { version: 1, epoch: 8n }), group('b2', { version: 1 }), group('d4')].map(
                grouped,
              ),
            ],
            deleteConversations: [groupId('s-old2'), groupId('c3')],
            peers: [peer('p-new')],
            processed: { groupId: groupId('b2'), digest: 'd1', at: at() },
            envelope: { digest: 'e1', expiresAt: at(60) },
            welcome: { digest: 'w1', at: at() },
            consumedKeyPackage: { ref: 'kp', at: at(1) },
            outbox: [outbox('o1', { awaitAck: true }), outbox('o2')],
            conversationData: [{ conversationId: 'c1', json: '{}' }],
          })
          .catch((e: unknown) => e);

        expect(err).toBeInstanceOf(StaleStateError);
        expect(err).toMatchObject({ groupId: groupId('b2'), expectedVersion: 1, storedVersion: 2 });
        expect(await snapshot(store)).toEqual(before);
        expect(await store.hasProcessed(groupId('b2'), 'd1')).toBe(false);
        await store.commit({ outbox: [outbox('after')] });
        expect(ids(await store.listOutbox())).toEqual(['before', 'after']);
      });

      it('applies no groups when a session of the same commit is stale', async () => {
        await commitSession(session('g-stale'));
        await commitGroup(group('a1'));
        const before = await snapshot(store);
        const err = await store
          .commit({
            conversations: [
              direct(session('g-stale', { version: 0 })),
              ...[group('a1', { version: 1, epoch: 9n }), group('b2')].map(grouped),
            ],
            deleteConversations: [groupId('a1')],
            outbox: [outbox('o1')],
          })
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StaleStateError);
        expect(await snapshot(store)).toEqual(before);
      });

      it('applies sessions, groups and group deletions of a successful commit together', async () => {
        await store.commit({ conversations: [group('a1'), group('c3')].map(grouped) });
        await store.commit({
          conversations: [
            direct(session('g1')),
            ...[group('a1', { version: 1, epoch: 6n }), group('b2')].map(grouped),
          ],
          deleteConversations: [groupId('c3')],
          outbox: [outbox('o1'), outbox('o2', { awaitAck: true })],
          processed: { groupId: groupId('a1'), digest: 'd1', at: at() },
        });
        const after = await snapshot(store);
        expect(after.sessions).toEqual([{ ...session('g1'), version: 1 }]);
        expect(after.groups).toEqual([
          group('a1', { version: 2, epoch: 6n }),
          { ...group('b2'), version: 1 },
        ]);
        expect(after.outbox).toEqual([outbox('o1'), outbox('o2', { awaitAck: true })]);
        expect(await store.hasProcessed(groupId('a1'), 'd1')).toBe(true);
      });

      it('applies everything of a successful commit together', async () => {
        await store.putKeyPackage(keyPackage('kp'));
        await store.commit({
          conversations: [session('g1')].map(direct),
          peers: [peer('p-new')],
          processed: { groupId: groupId('g1'), digest: 'd1', at: at() },
          envelope: { digest: 'e1', expiresAt: at(60) },
          welcome: { digest: 'w1', at: at() },
          consumedKeyPackage: { ref: 'kp', at: at(1) },
          outbox: [outbox('o1')],
          conversationData: [{ conversationId: 'c1', json: '{}' }],
        });
        const after = await snapshot(store);
        expect(after).toEqual({
          sessions: [{ ...session('g1'), version: 1 }],
          groups: [],
          outbox: [outbox('o1')],
          peer: peer('p-new'),
          processed: true,
          envelope: true,
          welcome: true,
          keyPackages: [keyPackage('kp', { consumedAt: at(1) })],
          conversation: '{}',
        });
      });

      // The shape of every inbound message in an established session (Postgres writes it as one
      // statement without BEGIN/COMMIT), with and without a further write that needs a transaction.
      it.each<[string, InboundCommit]>([
        ['alone', {}],
        ['with conversation data', { conversationData: [{ conversationId: 'c1', json: '{}' }] }],
      ])('applies nothing of a stale inbound-message commit (%s)', async (_, extra) => {
        await commitSession(session('g1'));
        await commitSession(session('g1', { version: 1 }));
        const before = await snapshot(store);
        const err = await store
          .commit({
            conversations: [session('g1', { version: 1, epoch: 9n })].map(direct),
            processed: { groupId: groupId('g1'), digest: 'd1', at: at() },
            envelope: { digest: 'e1', expiresAt: at(60) },
            outbox: [outbox('o1')],
            ...extra,
          })
          .catch((e: unknown) => e);
        expect(err).toMatchObject({ groupId: groupId('g1'), expectedVersion: 1, storedVersion: 2 });
        expect(err).toBeInstanceOf(StaleStateError);
        expect(await snapshot(store)).toEqual(before);
      });

      // The same for an application message in an N-way group.
      it.each<[string, InboundCommit]>([
        ['alone', {}],
        ['with conversation data', { conversationData: [{ conversationId: 'c1', json: '{}' }] }],
        ['with two outbox rows', { outbox: [outbox('o1'), outbox('o2', { awaitAck: true })] }],
      ])('applies nothing of a stale inbound group-message commit (%s)', async (_, extra) => {
        await commitGroup(group('a1'));
        await commitGroup(group('a1', { version: 1 }));
        const before = await snapshot(store);
        const err = await store
          .commit({
            conversations: [group('a1', { version: 1, epoch: 9n })].map(grouped),
            processed: { groupId: groupId('g1'), digest: 'd1', at: at() },
            envelope: { digest: 'e1', expiresAt: at(60) },
            outbox: [outbox('o1', { awaitAck: true })],
            ...extra,
          })
          .catch((e: unknown) => e);
        expect(err).toMatchObject({ groupId: groupId('a1'), expectedVersion: 1, storedVersion: 2 });
        expect(err).toBeInstanceOf(StaleStateError);
        expect(await snapshot(store)).toEqual(before);
      });

      it('applies everything of an inbound group-message commit together', async () => {
        await commitGroup(group('a1'));
        await store.commit({
          conversations: [group('a1', { version: 1, epoch: 9n, meta: '{}' })].map(grouped),
          processed: { groupId: groupId('g1'), digest: 'd1', at: at() },
          envelope: { digest: 'e1', expiresAt: at(60) },
          outbox: [outbox('o1', { awaitAck: true })],
        });
        const after = await snapshot(store);
        expect(after.groups).toEqual([group('a1', { version: 2, epoch: 9n, meta: '{}' })]);
        expect(after.outbox).toEqual([outbox('o1', { awaitAck: true })]);
        expect(after.processed).toBe(true);
        expect(after.envelope).toBe(true);
        expect(await store.getGroupByTopic(topicId('a1'))).toEqual(after.groups[0]);
      });

      it('applies everything of an inbound-message commit together', async () => {
        await commitSession(session('g1'));
        await store.commit({
          conversations: [session('g1', { version: 1, epoch: 9n, messagesSinceCommit: 4 })].map(direct),
          processed: { groupId: groupId('g1'), digest: 'd1', at: at() },
          envelope: { digest: 'e1', expiresAt: at(60) },
          outbox: [outbox('o1', { retain: true, messageExpirySeconds: 300 })],
        });
        const after = await snapshot(store);
        expect(after.sessions).toEqual([session('g1', { version: 2, epoch: 9n, messagesSinceCommit: 4 })]);
        expect(after.outbox).toEqual([outbox('o1', { retain: true, messageExpirySeconds: 300 })]);
        expect(after.processed).toBe(true);
        expect(after.envelope).toBe(true);
        // Upserts: the same digests again (a retried commit) refresh rather than fail.
        await store.commit({
          conversations: [session('g1', { version: 2 })].map(direct),
          processed: { groupId: groupId('g1'), digest: 'd1', at: at(5) },
          envelope: { digest: 'e1', expiresAt: at(90) },
        });
        expect((await store.getSession(groupId('g1')))?.version).toBe(3);
        expect(await store.hasEnvelope('e1', at(80))).toBe(true);
      });

      it('accepts an empty commit', async () => {
        await store.commit({});
        expect(await store.listOutbox()).toEqual([]);
      });
    });
  });
}
