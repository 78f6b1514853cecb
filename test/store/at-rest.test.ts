import type { DataSource } from 'typeorm';
import { ArgumentError, StorageError } from '../../framework/relay/errors.js';
import { deriveStateKey } from '../../framework/store/index.js';
import { pgBackend, postgresAvailable, sqliteBackend, type ReopenableBackend } from './helpers.js';
import { at, bytes, direct, group, groupId, grouped, keyPackage, session, topicId } from './store-suite.js';

const KEY = new Uint8Array(32).fill(42);
const OTHER_KEY = new Uint8Array(32).fill(43);
const identity = { signingSeed: bytes(32, 11), sealSecret: bytes(32, 12), createdAt: at() };

const raw = async (ds: DataSource, sql: string): Promise<Record<string, unknown>[]> =>
  (await ds.query(sql)) as Record<string, unknown>[];

const asBytes = (v: unknown) => new Uint8Array(v as Uint8Array);

/** A store with an identity, two sessions, two groups and key packages, written under KEY and then closed. */
async function seed(backend: ReopenableBackend): Promise<void> {
  const { store } = await backend.open({ stateKey: KEY });
  await store.saveIdentity(identity);
  await store.putKeyPackage(keyPackage('kp1'));
  await store.putKeyPackage(keyPackage('kp2', { privateKeyPackage: bytes(120, 99) }));
  await store.commit({
    conversations: [session('g1'), session('g2', { state: bytes(200, 77) })].map(direct),
  });
  await store.commit({ conversations: [group('a1'), group('b2', { state: bytes(300, 88) })].map(grouped) });
  await store.close();
}

const expectKeyError = (p: Promise<unknown>) =>
  expect(p).rejects.toThrow(
    expect.objectContaining({ code: 'STORAGE', message: expect.stringContaining('RELAY_STATE_KEY') }),
  );

function describeAtRest(name: string, makeBackend: () => Promise<ReopenableBackend>) {
  describe(`at-rest encryption: ${name}`, () => {
    let backend: ReopenableBackend;
    beforeEach(async () => {
      backend = await makeBackend();
      await seed(backend);
    });
    afterEach(() => backend.teardown());

    const withStore = async (
      key: Uint8Array | string | undefined,
      fn: (o: Awaited<ReturnType<ReopenableBackend['open']>>) => Promise<void>,
    ) => {
      const o = await backend.open(key === undefined ? {} : { stateKey: key });
      try {
        await fn(o);
      } finally {
        await o.cleanup();
      }
    };

    it('stores ciphertext, not the secrets, and reads them back with the key', async () => {
      await withStore(KEY, async ({ store, ds }) => {
        expect(store.encryptedAtRest).toBe(true);
        const [id] = await raw(ds, `SELECT signing_seed, seal_secret, at_rest FROM identities`);
        expect(asBytes(id!.signing_seed)).not.toEqual(identity.signingSeed);
        expect(asBytes(id!.signing_seed)).toHaveLength(32 + 12 + 16);
        expect(Number(id!.at_rest)).toBe(1);
        const [s] = await raw(ds, `SELECT state FROM conversations WHERE group_id = '${groupId('g1')}'`);
        expect(
          Buffer.from(asBytes(s!.state)).includes(Buffer.from(session('g1').state.subarray(0, 16))),
        ).toBe(false);
        const [k] = await raw(
          ds,
          `SELECT key_package, private_key_package FROM key_packages WHERE ref = 'kp1'`,
        );
        expect(asBytes(k!.private_key_package)).not.toEqual(keyPackage('kp1').privateKeyPackage);
        // The public key package is not secret and stays readable.
        expect(asBytes(k!.key_package)).toEqual(keyPackage('kp1').keyPackage);

        const [g] = await raw(
          ds,
          `SELECT state, at_rest FROM "conversations" WHERE group_id = '${groupId('a1')}'`,
        );
        expect(Buffer.from(asBytes(g!.state)).includes(Buffer.from(group('a1').state.subarray(0, 16)))).toBe(
          false,
        );
        expect(asBytes(g!.state)).toHaveLength(group('a1').state.length + 12 + 16);
        expect(Number(g!.at_rest)).toBe(1);

        expect(await store.loadIdentity()).toEqual(identity);
        expect((await store.getSession(groupId('g2')))?.state).toEqual(bytes(200, 77));
        expect(await store.getGroup(groupId('a1'))).toEqual({ ...group('a1'), version: 1 });
        expect((await store.getGroupByTopic(topicId('b2')))?.state).toEqual(bytes(300, 88));
        expect((await store.listGroups()).map((x) => x.state)).toEqual([group('a1').state, bytes(300, 88)]);
        expect((await store.listKeyPackages()).find((x) => x.ref === 'kp2')?.privateKeyPackage).toEqual(
          bytes(120, 99),
        );
      });
    });

    it('fails with a StorageError naming RELAY_STATE_KEY under the wrong key', async () => {
      await withStore(OTHER_KEY, async ({ store }) => {
        await expectKeyError(store.loadIdentity());
        await expectKeyError(store.getSession(groupId('g1')));
        await expectKeyError(store.listKeyPackages());
        await expectKeyError(store.getGroup(groupId('a1')));
        await expectKeyError(store.getGroupByTopic(topicId('a1')));
        await expectKeyError(store.listGroups());
      });
      await withStore('a passphrase that is not the key', async ({ store }) => {
        await expectKeyError(store.loadIdentity());
      });
    });

    it('refuses encrypted rows without a key, and plaintext rows under a key', async () => {
      await withStore(undefined, async ({ store }) => {
        expect(store.encryptedAtRest).toBe(false);
        await expectKeyError(store.loadIdentity());
        await expectKeyError(store.getGroup(groupId('a1')));
        await store.commit({ conversations: [direct(session('plain')), grouped(group('c3'))] });
      });
      await withStore(KEY, async ({ store }) => {
        await expectKeyError(store.getSession(groupId('plain')));
        await expectKeyError(store.getGroup(groupId('c3')));
      });
    });

    it('detects secrets moved between rows or columns', async () => {
      await withStore(KEY, async ({ store, ds }) => {
        await ds.query(
          `UPDATE conversations SET state = (SELECT state FROM conversations WHERE group_id = '${groupId('g2')}') WHERE group_id = '${groupId('g1')}'`,
        );
        await expect(store.getSession(groupId('g1'))).rejects.toBeInstanceOf(StorageError);
        expect((await store.getSession(groupId('g2')))?.state).toEqual(bytes(200, 77));

        await ds.query(
          `UPDATE key_packages SET private_key_package = (SELECT private_key_package FROM key_packages WHERE ref = 'kp2') WHERE ref = 'kp1'`,
        );
        await expect(store.listKeyPackages()).rejects.toBeInstanceOf(StorageError);

        await ds.query(`UPDATE identities SET signing_seed = seal_secret`);
        await expect(store.loadIdentity()).rejects.toBeInstanceOf(StorageError);
      });
    });

    it('a message load at the held version opens no state: only a full read meets the bad one', async () => {
      await withStore(KEY, async ({ store, ds }) => {
        const [a1, b2] = [groupId('a1'), groupId('b2')];
        await ds.query(
          `UPDATE "conversations" SET state = (SELECT state FROM "conversations" WHERE group_id = '${b2}') WHERE group_id = '${a1}'`,
        );
        expect(await store.loadGroupForMessage(a1, 'd1', 1)).toMatchObject({ stateSkipped: true });
        await expectKeyError(store.loadGroupForMessage(a1, 'd1', 2));
        await expectKeyError(store.loadGroupForMessage(a1, 'd1'));
      });
    });

    it('detects group state moved between groups, or between a session and a group', async () => {
      await withStore(KEY, async ({ store, ds }) => {
        const [a1, b2] = [groupId('a1'), groupId('b2')];
        await ds.query(
          `UPDATE "conversations" SET state = (SELECT state FROM "conversations" WHERE group_id = '${b2}') WHERE group_id = '${a1}'`,
        );
        await expectKeyError(store.getGroup(a1));
        expect((await store.getGroup(b2))?.state).toEqual(bytes(300, 88));

        // The same key as the other kind: the AAD names the kind (its old table), so this fails too.
        // x9's 1:1 columns are its own, sealed by the store; only its state is the group's.
        const x9 = groupId('x9');
        await store.commit({ conversations: [direct(session('x9'))] });
        const [directRow] = await raw(ds, `SELECT * FROM conversations WHERE group_id = '${x9}'`);
        await store.commit({ deleteConversations: [x9] });
        await store.commit({ conversations: [group('x9')].map(grouped) });
        const columns = [
          'peer_id',
          'initiated_unconfirmed',
          'inbound_access_current',
          'messages_since_commit',
        ];
        const marks = columns.map((c, i) => `"${c}" = ${ds.options.type === 'postgres' ? `$${i + 1}` : '?'}`);
        await ds.query(
          `UPDATE conversations SET kind = 'direct', topic_id = NULL, meta = NULL, unconfirmed_outgoing = '${String(directRow!.unconfirmed_outgoing)}', ${marks.join(', ')} WHERE group_id = '${x9}'`,
          columns.map((c) => directRow![c]),
        );
        await expectKeyError(store.getSession(x9));
      });
    });

    it('detects a truncated or altered ciphertext', async () => {
      await withStore(KEY, async ({ store, ds }) => {
        const [row] = await raw(ds, `SELECT signing_seed FROM identities`);
        const altered = asBytes(row!.signing_seed);
        altered[20] = altered[20]! ^ 1;
        const param = ds.options.type === 'postgres' ? '$1' : '?';
        await ds.query(`UPDATE identities SET signing_seed = ${param}`, [Buffer.from(altered)]);
        await expectKeyError(store.loadIdentity());
        await ds.query(`UPDATE identities SET signing_seed = ${param}`, [Buffer.alloc(5)]);
        await expectKeyError(store.loadIdentity());
      });
    });
  });
}

describeAtRest('sqlite', async () => sqliteBackend());

const pgUp = await postgresAvailable('the Postgres at-rest tests');
(pgUp ? describe : describe.skip)('Postgres', () => describeAtRest('postgres', pgBackend));

describe('state key', () => {
  it('takes 32 raw bytes as they are and stretches strings deterministically', () => {
    expect(deriveStateKey(KEY)).toEqual(KEY);
    const a = deriveStateKey('hunter2');
    expect(a).toHaveLength(32);
    expect(deriveStateKey('hunter2')).toEqual(a);
    expect(deriveStateKey('hunter3')).not.toEqual(a);
  });

  it('rejects keys of the wrong length and empty strings', () => {
    expect(() => deriveStateKey(new Uint8Array(16))).toThrow(ArgumentError);
    expect(() => deriveStateKey('')).toThrow(ArgumentError);
  });
});
