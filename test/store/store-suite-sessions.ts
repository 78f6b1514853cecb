/**
 * Store suite, part of describeRelayStore (store-suite.ts). Direct sessions, conversations of either
 * kind, and session access keys and expiry.
 */
import { StaleStateError } from '../../framework/relay/errors.js';
import type { RelayStore } from '../../framework/relay/store.js';
import {
  at,
  bytes,
  allByteValues,
  session,
  groupId,
  group,
  direct,
  grouped,
  peer,
  isPlainBytes,
  type StoreSuiteContext,
} from './store-fixtures.js';

export function describeSessions(ctx: StoreSuiteContext): void {
  const { commitSession } = ctx;
  describe('sessions', () => {
    let store: RelayStore;
    beforeEach(() => {
      store = ctx.store;
    });

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
}

export function describeConversations(ctx: StoreSuiteContext): void {
  describe('conversations of either kind', () => {
    let store: RelayStore;
    beforeEach(() => {
      store = ctx.store;
    });

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
}

export function describeSessionAccess(ctx: StoreSuiteContext): void {
  const { commitSession } = ctx;
  describe('session access and expiry', () => {
    let store: RelayStore;
    beforeEach(() => {
      store = ctx.store;
    });

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
}
