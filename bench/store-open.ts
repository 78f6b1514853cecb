/** The stores the store benchmark (bench/store.ts) runs on: Memory, SQLite in a temp directory, Postgres in a fresh schema. */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MemoryRelayStore, type RelayStore } from '../framework/relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../framework/store/index.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresAnswers } from '../test/support/postgres.js';
import { note } from './harness.js';

export type StoreKind = 'memory' | 'sqlite' | 'postgres';

export const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

// ---- stores -------------------------------------------------------------------------------------

export interface OpenedStore {
  readonly kind: StoreKind;
  readonly store: RelayStore;
  /** SQLite only: the temp directory holding the database, on the same filesystem. */
  readonly dir?: string;
  /** Postgres only: the throwaway schema. */
  readonly schema?: string;
  dispose(): Promise<void>;
}

export async function openStore(kind: StoreKind): Promise<OpenedStore> {
  if (kind === 'memory') {
    const store = new MemoryRelayStore();
    return { kind, store, dispose: () => store.close() };
  }
  if (kind === 'sqlite') {
    const dir = await mkdtemp(path.join(tmpdir(), 'relay-bench-store-'));
    const removeDir = () => rm(dir, { recursive: true, force: true });
    try {
      const store = new TypeOrmRelayStore(
        await createRelayDataSource({ sqlitePath: path.join(dir, 'relay.sqlite') }),
      );
      return {
        kind,
        store,
        dir,
        dispose: async () => {
          try {
            await store.close();
          } finally {
            await removeDir();
          }
        },
      };
    } catch (e) {
      await removeDir();
      throw e;
    }
  }
  const schema = `relay_bench_${hex(6)}`;
  await createPgSchema(schema);
  try {
    const store = new TypeOrmRelayStore(await createRelayDataSource({ url: PG_URL, schema }));
    return {
      kind,
      store,
      schema,
      dispose: async () => {
        try {
          await store.close();
        } finally {
          await dropPgSchema(schema);
        }
      },
    };
  } catch (e) {
    await dropPgSchema(schema);
    throw e;
  }
}

export async function availableKinds(): Promise<StoreKind[]> {
  if (await postgresAnswers()) return ['memory', 'sqlite', 'postgres'];
  note(`Postgres at ${new URL(PG_URL).host} does not answer: its lines are skipped`);
  return ['memory', 'sqlite'];
}
