/**
 * With a state key set, every column that holds a secret or a conversation's plaintext is sealed
 * (AES-256-GCM, its table, column and row as AAD): inbound access keys (a database reader holding
 * one could skip PoW), texts sent before the peer confirmed, conversation data (ctx.session) and
 * group meta (names and members). A sealed value moved to another row must not open.
 */
import type { DataSource } from 'typeorm';
import { pgBackend, postgresAvailable, sqliteBackend, type ReopenableBackend } from './helpers.js';
import { bytes, direct, group, groupId, grouped, session } from './store-suite.js';

const KEY = new Uint8Array(32).fill(42);
const ACCESS = bytes(32, 0x5a);
const ACCESS_PREV = bytes(32, 0x6b);
const OUTGOING = ['the launch code is 1234', 'unconfirmed second line'];
const SESSION_JSON = JSON.stringify({ secretNote: 'meet at the harbour' });
const META = JSON.stringify({ name: 'Secret Planning Committee', committer: 'ab'.repeat(32) });

const rows = async (ds: DataSource, sql: string) => (await ds.query(sql)) as Record<string, unknown>[];
const raw = (v: unknown): Buffer =>
  v instanceof Uint8Array ? Buffer.from(v) : Buffer.from(String(v), 'utf8');
const contains = (v: unknown, needle: Uint8Array | string) =>
  raw(v).includes(typeof needle === 'string' ? Buffer.from(needle, 'utf8') : Buffer.from(needle));

async function seed(backend: ReopenableBackend): Promise<void> {
  const { store, cleanup } = await backend.open({ stateKey: KEY });
  try {
    await store.commit({
      conversations: [
        direct(
          session('g1', {
            inboundAccess: { current: ACCESS, previous: ACCESS_PREV },
            unconfirmedOutgoing: OUTGOING,
          }),
        ),
        direct(
          session('g2', { inboundAccess: { current: bytes(32, 0x11) }, unconfirmedOutgoing: ['other'] }),
        ),
        grouped(group('a1', { meta: META })),
        grouped(group('b2', { meta: '{"name":"b"}' })),
      ],
      conversationData: [
        { conversationId: 'dm:alice', json: SESSION_JSON },
        { conversationId: 'dm:bob', json: '{"n":2}' },
      ],
    });
  } finally {
    await cleanup();
  }
}

function describeColumns(name: string, makeBackend: () => Promise<ReopenableBackend>) {
  describe(`sealed columns: ${name}`, () => {
    let backend: ReopenableBackend;
    beforeEach(async () => {
      backend = await makeBackend();
      await seed(backend);
    });
    afterEach(() => backend.teardown());

    it('keeps access keys, unconfirmed texts, conversation data and group meta out of the raw database', async () => {
      const { store, ds, cleanup } = await backend.open({ stateKey: KEY });
      try {
        const [s] = await rows(ds, `SELECT * FROM conversations WHERE group_id = '${groupId('g1')}'`);
        expect(contains(s!.inbound_access_current, ACCESS)).toBe(false);
        expect(contains(s!.inbound_access_previous, ACCESS_PREV)).toBe(false);
        expect(contains(s!.unconfirmed_outgoing, 'launch code')).toBe(false);
        const [g] = await rows(ds, `SELECT * FROM "conversations" WHERE group_id = '${groupId('a1')}'`);
        expect(contains(g!.meta, 'Secret Planning')).toBe(false);
        const [d] = await rows(ds, `SELECT * FROM conversation_data WHERE conversation_id = 'dm:alice'`);
        expect(contains(d!.json, 'harbour')).toBe(false);

        // And the store still reads them back.
        const loaded = await store.getSession(groupId('g1'));
        expect(loaded?.inboundAccess).toEqual({ current: ACCESS, previous: ACCESS_PREV });
        expect(loaded?.unconfirmedOutgoing).toEqual(OUTGOING);
        expect((await store.getGroup(groupId('a1')))?.meta).toBe(META);
        expect(await store.getConversationData('dm:alice')).toBe(SESSION_JSON);
        expect(await store.listConversationData('dm:')).toEqual([
          { conversationId: 'dm:alice', json: SESSION_JSON },
          { conversationId: 'dm:bob', json: '{"n":2}' },
        ]);
      } finally {
        await cleanup();
      }
    });

    it("detects two rows' sealed values swapped", async () => {
      const { store, ds, cleanup } = await backend.open({ stateKey: KEY });
      const swap = async (table: string, key: string, column: string, a: string, b: string) => {
        const [ra] = await rows(ds, `SELECT "${column}" AS v FROM "${table}" WHERE "${key}" = '${a}'`);
        const [rb] = await rows(ds, `SELECT "${column}" AS v FROM "${table}" WHERE "${key}" = '${b}'`);
        const p = ds.options.type === 'postgres' ? ['$1', '$2'] : ['?', '?'];
        const set = `UPDATE "${table}" SET "${column}" = ${p[0]} WHERE "${key}" = ${p[1]}`;
        await ds.query(set, [rb!.v, a]);
        await ds.query(set, [ra!.v, b]);
      };
      try {
        await swap('conversations', 'group_id', 'inbound_access_current', groupId('g1'), groupId('g2'));
        await expect(store.getSession(groupId('g1'))).rejects.toThrow(
          /cannot decrypt sessions\.inbound_access_current/,
        );
        await swap('conversations', 'group_id', 'inbound_access_current', groupId('g1'), groupId('g2'));
        await swap('conversations', 'group_id', 'unconfirmed_outgoing', groupId('g1'), groupId('g2'));
        await expect(store.getSession(groupId('g2'))).rejects.toThrow(
          /cannot decrypt sessions\.unconfirmed_outgoing/,
        );
        await swap('conversations', 'group_id', 'unconfirmed_outgoing', groupId('g1'), groupId('g2'));
        expect((await store.getSession(groupId('g1')))?.unconfirmedOutgoing).toEqual(OUTGOING);

        await swap('conversations', 'group_id', 'meta', groupId('a1'), groupId('b2'));
        await expect(store.getGroup(groupId('a1'))).rejects.toThrow(/cannot decrypt groups\.meta/);

        await swap('conversation_data', 'conversation_id', 'json', 'dm:alice', 'dm:bob');
        await expect(store.getConversationData('dm:bob')).rejects.toThrow(
          /cannot decrypt conversation_data\.json/,
        );
      } finally {
        await cleanup();
      }
    });
  });
}

describeColumns('sqlite', async () => sqliteBackend());

const pgUp = await postgresAvailable('the Postgres sealed-column tests');
(pgUp ? describe : describe.skip)('Postgres', () => describeColumns('postgres', pgBackend));
