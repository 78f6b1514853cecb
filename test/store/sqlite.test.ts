import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import {
  createRelayDataSource,
  isPostgresUrl,
  MIGRATIONS_TABLE,
  relayDataSourceOptions,
  runMigrations,
} from '../../framework/store/index.js';
import { sqliteFile, tempDir } from './helpers.js';

const dir = tempDir();
afterAll(() => dir.remove());

const pragma = async (ds: DataSource, name: string): Promise<unknown> => {
  const rows = (await ds.query(`PRAGMA ${name}`)) as Record<string, unknown>[];
  return Object.values(rows[0] ?? {})[0];
};

describe('SQLite data source', () => {
  it('runs WAL with synchronous=FULL and a busy timeout on every open', async () => {
    const path = sqliteFile(dir.path);
    for (let open = 0; open < 2; open++) {
      const ds = await createRelayDataSource({ sqlitePath: path });
      expect(await pragma(ds, 'journal_mode')).toBe('wal');
      expect(await pragma(ds, 'synchronous')).toBe(2);
      expect(await pragma(ds, 'busy_timeout')).toBe(5000);
      await ds.destroy();
    }
  });

  it('creates the directory of the database file', async () => {
    const path = join(dir.path, 'nested', 'deeper', 'relay.sqlite');
    const ds = await createRelayDataSource({ sqlitePath: path });
    expect(existsSync(path)).toBe(true);
    await ds.destroy();
  });

  it('runs the migrations once; a second open is a no-op', async () => {
    const path = sqliteFile(dir.path);
    const first = await createRelayDataSource({ sqlitePath: path, migrate: false });
    expect(await first.showMigrations()).toBe(true);
    expect(await runMigrations(first)).toEqual([
      'Initial1795846949665',
      'Groups1795854576242',
      'ParkedInbound1796621651928',
      'StateKey1796621877627',
      'OutboxQuarantine1796622191638',
      'Conversations1796640000000',
      'Leases1796652958681',
      'OutboxOwner1796668800000',
      'MessageSenders1796700000000',
      'EpochState1796710000000',
    ]);
    expect(await runMigrations(first)).toEqual([]);
    await first.destroy();

    const second = await createRelayDataSource({ sqlitePath: path });
    expect(await second.showMigrations()).toBe(false);
    expect(await runMigrations(second)).toEqual([]);
    expect(await second.query(`SELECT COUNT(*) AS "n" FROM "${MIGRATIONS_TABLE}"`)).toEqual([{ n: 10 }]);
    await second.destroy();
  });

  it('has migrations that match the entity schemas and revert cleanly, one at a time', async () => {
    const ds = await createRelayDataSource({ sqlitePath: sqliteFile(dir.path) });
    expect((await ds.driver.createSchemaBuilder().log()).upQueries).toEqual([]);
    const tables = async () =>
      ((await ds.query(`SELECT name FROM sqlite_master WHERE type = 'table'`)) as { name: string }[])
        .map((t) => t.name)
        .filter((n) =>
          [
            'sessions',
            'outbox',
            'groups',
            'relay_meta',
            'parked_inbound',
            'conversations',
            'leases',
            'replicas',
            'message_senders',
          ].includes(n),
        )
        .sort();
    const columns = async (table: string) =>
      ((await ds.query(`PRAGMA table_info("${table}")`)) as { name: string }[]).map((c) => c.name);
    const outboxColumns = () => columns('outbox');

    const conversationColumns = () => columns('conversation_data');

    expect(await columns('conversations')).toContain('epoch_state');
    await ds.undoLastMigration();
    expect(await columns('conversations')).not.toContain('epoch_state');
    expect(await tables()).toEqual([
      'conversations',
      'leases',
      'message_senders',
      'outbox',
      'parked_inbound',
      'relay_meta',
      'replicas',
    ]);
    await ds.undoLastMigration();
    expect(await tables()).toEqual([
      'conversations',
      'leases',
      'outbox',
      'parked_inbound',
      'relay_meta',
      'replicas',
    ]);
    expect(await outboxColumns()).toContain('replica');
    await ds.undoLastMigration();
    expect(await outboxColumns()).not.toContain('replica');
    await ds.undoLastMigration();
    expect(await tables()).toEqual(['conversations', 'outbox', 'parked_inbound', 'relay_meta']);
    expect(await columns('conversations')).toContain('unused_since');
    await ds.undoLastMigration();
    expect(await tables()).toEqual(['groups', 'outbox', 'parked_inbound', 'relay_meta', 'sessions']);
    expect(await columns('sessions')).toContain('unused_since');
    await ds.undoLastMigration();
    expect(await tables()).toEqual(['groups', 'outbox', 'parked_inbound', 'relay_meta', 'sessions']);
    expect(await outboxColumns()).not.toContain('quarantined_at');
    expect(await outboxColumns()).not.toContain('depends_on');
    expect(await outboxColumns()).toContain('await_ack');
    await ds.undoLastMigration();
    expect(await tables()).toEqual(['groups', 'outbox', 'parked_inbound', 'sessions']);
    expect(await conversationColumns()).not.toContain('at_rest');
    await ds.undoLastMigration();
    expect(await tables()).toEqual(['groups', 'outbox', 'sessions']);
    expect(await columns('sessions')).not.toContain('unused_since');
    await ds.undoLastMigration();
    expect(await tables()).toEqual(['outbox', 'sessions']);
    expect(await outboxColumns()).not.toContain('await_ack');
    await ds.undoLastMigration();
    expect(await tables()).toEqual([]);
    expect(await runMigrations(ds)).toHaveLength(10);
    expect((await ds.driver.createSchemaBuilder().log()).upQueries).toEqual([]);
    await ds.destroy();
  });

  it('chooses the backend from the URL scheme', () => {
    expect(isPostgresUrl('postgres://u@h/db')).toBe(true);
    expect(isPostgresUrl('postgresql://u@h/db')).toBe(true);
    expect(isPostgresUrl('mysql://u@h/db')).toBe(false);
    expect(isPostgresUrl(undefined)).toBe(false);
    const path = sqliteFile(dir.path);
    expect(relayDataSourceOptions({ url: 'file:whatever', sqlitePath: path })).toMatchObject({
      type: 'better-sqlite3',
      database: path,
    });
  });
});
