/**
 * A thin SQL layer over a TypeORM QueryRunner. The store writes portable SQL with `?` placeholders
 * (numbered `$n` for Postgres here) because the commit path needs exact control: row locks,
 * compare-and-set on version, and affected-row counts.
 */
import type { DataSource, QueryRunner } from 'typeorm';
import { QueryFailedError } from 'typeorm';
import { StorageError } from '../relay/errors.js';
import type { RelayBackend } from './entities.js';
import type { Row } from './mapping.js';

export interface Sql {
  readonly backend: RelayBackend;
  rows(sql: string, params?: unknown[]): Promise<Row[]>;
  /** Runs a statement and returns the number of rows it changed. */
  run(sql: string, params?: unknown[]): Promise<number>;
}

export function backendOf(ds: DataSource): RelayBackend {
  const type = ds.options.type;
  if (type === 'postgres') return 'postgres';
  if (type === 'better-sqlite3') return 'sqlite';
  throw new StorageError(`unsupported database type ${type}: use postgres or better-sqlite3`);
}

function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** `?, ?, ?` for an IN list. */
export const placeholders = (count: number): string => Array.from({ length: count }, () => '?').join(', ');

/**
 * QueryFailedError carries the bound parameters, which include key material; rethrow without them.
 */
function storageError(err: unknown): unknown {
  if (!(err instanceof QueryFailedError)) return err;
  const driverError: unknown = err.driverError;
  const code = (driverError as { code?: unknown } | undefined)?.code;
  return new StorageError(`database query failed: ${err.message}${code ? ` (${String(code)})` : ''}`, {
    cause: driverError,
  });
}

export function sqlOn(qr: QueryRunner, backend: RelayBackend): Sql {
  const text = (sql: string) => (backend === 'postgres' ? numbered(sql) : sql);
  const bind = (params: unknown[]) => params.map((p) => (p === undefined ? null : p));
  const exec = async (sql: string, params: unknown[]) => {
    try {
      return await qr.query(text(sql), bind(params), true);
    } catch (err) {
      throw storageError(err);
    }
  };
  return {
    backend,
    rows: async (sql, params = []) => ((await exec(sql, params)).records ?? []) as Row[],
    run: async (sql, params = []) => (await exec(sql, params)).affected ?? 0,
  };
}
