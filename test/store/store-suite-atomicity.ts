/**
 * Store suite, part of describeRelayStore (store-suite.ts). Commit atomicity: a commit applies
 * everything or nothing.
 */
import { StaleStateError } from '../../framework/relay/errors.js';
import type { InboundCommit, RelayStore } from '../../framework/relay/store.js';
import {
  at,
  session,
  groupId,
  topicId,
  group,
  direct,
  grouped,
  peer,
  keyPackage,
  outbox,
  ids,
  snapshot,
  type StoreSuiteContext,
} from './store-fixtures.js';

export function describeCommitAtomicity(ctx: StoreSuiteContext): void {
  const { commitSession, commitGroup } = ctx;
  describe('commit atomicity', () => {
    let store: RelayStore;
    beforeEach(() => {
      store = ctx.store;
    });

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
      expect(after.groups).toEqual([group('a1', { version: 2, epoch: 6n }), { ...group('b2'), version: 1 }]);
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
}
