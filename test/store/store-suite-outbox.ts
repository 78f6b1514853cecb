/**
 * Store suite, part of describeRelayStore (store-suite.ts). The outbox and per-conversation data.
 */
import type { RelayStore } from '../../framework/relay/store.js';
import {
  at,
  allByteValues,
  session,
  group,
  outbox,
  ids,
  isPlainBytes,
  type StoreSuiteContext,
} from './store-fixtures.js';

export function describeOutbox(ctx: StoreSuiteContext): void {
  const { commitSession, commitGroup } = ctx;
  describe('outbox', () => {
    let store: RelayStore;
    beforeEach(() => {
      store = ctx.store;
    });

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
}

export function describeConversationData(ctx: StoreSuiteContext): void {
  describe('conversation data', () => {
    let store: RelayStore;
    beforeEach(() => {
      store = ctx.store;
    });

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
}
