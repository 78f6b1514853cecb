/**
 * Store suite, part of describeRelayStore (store-suite.ts). N-way groups and their summaries.
 */
import { StaleStateError, StorageError } from '../../framework/relay/errors.js';
import type { RelayStore } from '../../framework/relay/store.js';
import {
  at,
  bytes,
  allByteValues,
  session,
  groupId,
  topicId,
  group,
  direct,
  grouped,
  outbox,
  isPlainBytes,
  snapshot,
  type StoreSuiteContext,
} from './store-fixtures.js';

export function describeGroups(ctx: StoreSuiteContext): void {
  const { commitGroup } = ctx;
  describe('groups', () => {
    let store: RelayStore;
    beforeEach(() => {
      store = ctx.store;
    });

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
}

export function describeGroupSummaries(ctx: StoreSuiteContext): void {
  const { commitGroup } = ctx;
  describe('group summaries', () => {
    let store: RelayStore;
    beforeEach(() => {
      store = ctx.store;
    });

    it('lists every group without its state, in group id order', async () => {
      await commitGroup(group('b2'));
      await commitGroup(group('a1'));
      expect(await store.listGroupSummaries()).toEqual(
        ['a1', 'b2'].map((t) => ({ groupId: groupId(t), topicId: topicId(t), meta: group(t).meta })),
      );
    });
  });
}
