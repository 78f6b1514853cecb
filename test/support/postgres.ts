/** Postgres for tests: the local server when it answers, one throwaway schema per test run. */
import pg from 'pg';

export const PG_URL = process.env.RELAY_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export async function postgresAnswers(url = PG_URL): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Whether `what` can run on Postgres, decided once when a test file loads so that the tests are
 * reported as skipped (not as passed) without it; prints why once.
 */
export async function postgresForTests(what: string, url = PG_URL): Promise<boolean> {
  if (await postgresAnswers(url)) return true;
  const shown = new URL(url);
  if (shown.password) shown.password = '***';
  console.warn(`skipping ${what}: Postgres at ${shown.toString()} does not answer`);
  return false;
}

async function run(sql: string, url = PG_URL): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

export async function createPgSchema(schema: string, url = PG_URL): Promise<void> {
  if (!SCHEMA_RE.test(schema)) throw new Error(`bad schema name ${schema}`);
  await run(`CREATE SCHEMA "${schema}"`, url);
}

export async function dropPgSchema(schema: string, url = PG_URL): Promise<void> {
  if (!SCHEMA_RE.test(schema)) throw new Error(`bad schema name ${schema}`);
  await run(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`, url);
}
