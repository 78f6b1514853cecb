/**
 * Child processes for the crash tests. The parent's end starts a script from test/support and waits
 * for its "READY <user id>" line, then kills it with SIGKILL at will; the child's end opens the
 * durable store the parent named in the environment, which outlives every kill.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRelayDataSource, TypeOrmRelayStore } from '../../framework/store/index.js';
import { uniqueName } from './broker.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresAnswers } from './postgres.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

export interface Child {
  process: ChildProcess;
  userId: string;
}

// ---- the parent's end ---------------------------------------------------------------------------

/**
 * Runs test/support/`script` with `childEnv` on top of this process's; resolves at its READY line.
 * `onOutput` sees everything the child printed so far, each time it prints more.
 */
export function startChild(
  script: string,
  childEnv: Record<string, string>,
  onOutput?: (out: string) => void,
): Promise<Child> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/support', script)], {
    cwd: ROOT,
    // Jest's --experimental-vm-modules is for Jest; the child runs under tsx.
    env: { ...process.env, ...childEnv, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /READY ([0-9a-f]{32})/.exec(out);
      if (m) resolve({ process: child, userId: m[1]! });
      onOutput?.(out);
    });
    child.once('exit', (code) => reject(new Error(`${path.basename(script, '.ts')} exited early (${code})`)));
  });
}

export async function kill(child: Child): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return;
  const exited = new Promise((r) => child.process.once('exit', r));
  child.process.kill('SIGKILL');
  await exited;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type StoreEnv = Record<string, string>;

/** Runs `fn` with the environment naming a fresh SQLite file for the child, removed afterwards. */
export async function onSqlite(fn: (env: StoreEnv) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'relay-child-'));
  try {
    await fn({ RELAY_SQLITE_PATH: path.join(dir, 'relay.sqlite') });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Runs `fn` with the environment naming a fresh Postgres schema, dropped afterwards. False, and
 * nothing run, when Postgres does not answer: the caller decides whether that is worth a warning.
 */
export async function onPostgres(fn: (env: StoreEnv) => Promise<void>): Promise<boolean> {
  if (!(await postgresAnswers())) return false;
  const schema = uniqueName('child').replace(/-/g, '_');
  await createPgSchema(schema);
  try {
    await fn({ DATABASE_URL: PG_URL, RELAY_PG_SCHEMA: schema });
  } finally {
    await dropPgSchema(schema);
  }
  return true;
}

// ---- the child's end ----------------------------------------------------------------------------

/** The line startChild waits for: the child is serving, as `userId`. */
export function sayReady(userId: string): void {
  process.stdout.write(`READY ${userId}\n`);
}

/** A setting the parent must give; without it the child stops, naming what it needs. */
function need(vars: Record<string, string | undefined>, name: string): string {
  const v = vars[name];
  if (!v) throw new Error(`${path.basename(process.argv[1] ?? 'child', '.ts')} needs ${name}`);
  return v;
}

export const env = (name: string): string => need(process.env, name);

/**
 * The store named by DATABASE_URL (Postgres; schema in RELAY_PG_SCHEMA) or else RELAY_SQLITE_PATH:
 * in a child from its own environment, in the parent from the one it gave the child, to check what
 * the child left behind. `inspect`: the parent reads while the child runs, which the SQLite
 * one-process lock would refuse (sqlite-process-lock.ts).
 */
export async function storeFromEnv(
  vars: Record<string, string | undefined> = process.env,
  { inspect = false }: { inspect?: boolean } = {},
): Promise<TypeOrmRelayStore> {
  return new TypeOrmRelayStore(
    await createRelayDataSource(
      vars.DATABASE_URL
        ? { url: vars.DATABASE_URL, ...(vars.RELAY_PG_SCHEMA ? { schema: vars.RELAY_PG_SCHEMA } : {}) }
        : { sqlitePath: need(vars, 'RELAY_SQLITE_PATH'), sqliteProcessLock: !inspect },
    ),
  );
}
