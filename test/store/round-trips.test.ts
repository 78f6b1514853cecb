/**
 * Postgres round trips per commit (issue #12): statements counted on the pg client the store's
 * DataSource uses, for the commits the runtime makes. The common one (a message in an established
 * conversation, one reply) is one statement; a larger commit is BEGIN, one locking read, one
 * multi-row INSERT, one statement for all other writes, COMMIT, however many rows it carries.
 */
import pg from 'pg';
import { StaleStateError } from '../../framework/relay/errors.js';
import type { RelayStore } from '../../framework/relay/index.js';
import { CONVERSATION_DATA_DELETED } from '../../framework/relay/store.js';
import { freshPgSchema, openPgIn, postgresAvailable, type OpenStore } from './helpers.js';
import { at, direct, group, groupId, grouped, keyPackage, outbox, peer, session } from './store-suite.js';

const pgUp = await postgresAvailable('the round-trip counts');

/** Counts the statements sent while `run` runs (every pg client in this process). */
async function statements(run: () => Promise<unknown>): Promise<number> {
  const proto = pg.Client.prototype as unknown as { query: (...a: unknown[]) => unknown };
  const original = proto.query;
  let n = 0;
  proto.query = function (this: unknown, ...args: unknown[]) {
    n++;
    return original.apply(this, args);
  };
  try {
    await run();
  } finally {
    proto.query = original;
  }
  return n;
}

(pgUp ? describe : describe.skip)('Postgres round trips per commit', () => {
  let drop: () => Promise<void>;
  let opened: OpenStore;
  let store: RelayStore;

  beforeEach(async () => {
    const fresh = await freshPgSchema();
    drop = fresh.drop;
    opened = await openPgIn(fresh.schema);
    store = opened.store;
    // Warm: the pool's first connection is made outside the counted commits.
    await store.listOutbox();
  });
  afterEach(async () => {
    await opened.cleanup();
    await drop();
  });

  test('a message in a stored conversation with one reply: one statement', async () => {
    await store.commit({ conversations: [direct(session('s1'))] });
    const stored = (await store.getSession(groupId('s1')))!;
    const n = await statements(() =>
      store.commit({
        conversations: [direct({ ...stored, messagesSinceCommit: 1 })],
        outbox: [outbox('o1')],
        processed: { groupId: groupId('s1'), digest: 'd1', at: at() },
        envelope: { digest: 'e1', expiresAt: at(100) },
      }),
    );
    expect(n).toBe(1);
    expect((await store.listOutbox()).map((o) => o.id)).toEqual(['o1']);
    expect(await store.hasProcessed(groupId('s1'), 'd1')).toBe(true);
  });

  test('a stored conversation with three replies and data: BEGIN, the update, the rest, COMMIT', async () => {
    await store.commit({ conversations: [grouped(group('g1'))] });
    const stored = (await store.getGroup(groupId('g1')))!;
    const n = await statements(() =>
      store.commit({
        conversations: [grouped({ ...stored, epoch: 6n })],
        outbox: [outbox('r3'), outbox('r1'), outbox('r2')],
        conversationData: [{ conversationId: 'c1', json: '{"a":1}' }],
        processed: { groupId: groupId('g1'), digest: 'd1', at: at() },
        envelope: { digest: 'e1', expiresAt: at(100) },
      }),
    );
    expect(n).toBe(4);
    // Published in commit order: the seq follows the order listed.
    expect((await store.listOutbox()).map((o) => o.id)).toEqual(['r3', 'r1', 'r2']);
    expect(await store.getConversationData('c1')).toBe('{"a":1}');
  });

  test('many new conversations, peers and rows: five statements, all of it written', async () => {
    const sessions = Array.from({ length: 50 }, (_, i) => session(`n${i}`, { peerId: `peer-${i}` }));
    const n = await statements(() =>
      store.commit({
        conversations: [...sessions.map(direct), grouped(group('ng'))],
        peers: [...sessions.map((s) => peer(s.peerId)), peer('peer-0', { powBits: 20 })],
        outbox: [outbox('a'), outbox('b')],
        conversationData: [
          { conversationId: 'x', json: '1' },
          { conversationId: 'y', json: '2' },
          { conversationId: 'x', json: '3' },
        ],
        welcome: { digest: 'w1', at: at() },
        processed: { groupId: groupId('ng'), digest: 'd', at: at() },
        envelope: { digest: 'e', expiresAt: at(100) },
      }),
    );
    expect(n).toBe(5);
    expect((await store.listSessions()).length).toBe(50);
    expect((await store.getGroup(groupId('ng')))?.version).toBe(1);
    // The last entry for a key wins, as it would one statement after another.
    expect((await store.getPeer('peer-0'))?.powBits).toBe(20);
    expect(await store.getConversationData('x')).toBe('3');
    expect(await store.getConversationData('y')).toBe('2');
    expect((await store.listOutbox()).map((o) => o.id)).toEqual(['a', 'b']);
    expect(await store.hasWelcome('w1', at())).toBe(true);
  });

  test('replacing a conversation and consuming a key package, in one transaction', async () => {
    await store.commit({
      conversations: [direct(session('old'))],
      conversationData: [{ conversationId: 'c', json: '1' }],
    });
    await store.putKeyPackage(keyPackage('kp1'));
    const n = await statements(() =>
      store.commit({
        deleteConversations: [groupId('old')],
        conversations: [direct(session('new'))],
        conversationData: [{ conversationId: 'c', json: CONVERSATION_DATA_DELETED }],
        consumedKeyPackage: { ref: 'kp1', at: at() },
      }),
    );
    expect(n).toBeLessThanOrEqual(6);
    expect(await store.getSession(groupId('old'))).toBeUndefined();
    expect((await store.getSession(groupId('new')))?.version).toBe(1);
    expect(await store.getConversationData('c')).toBeUndefined();
    expect((await store.listKeyPackages())[0]?.consumedAt).toBe(at());
  });

  test('a stale version among many applies nothing', async () => {
    await store.commit({ conversations: [direct(session('s1'))] });
    await expect(
      store.commit({
        conversations: [direct(session('s0')), direct(session('s1')), direct(session('s2'))],
        outbox: [outbox('never')],
      }),
    ).rejects.toBeInstanceOf(StaleStateError);
    expect((await store.listSessions()).map((s) => s.groupId)).toEqual([groupId('s1')]);
    expect(await store.listOutbox()).toEqual([]);
  });
});
