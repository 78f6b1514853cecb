/**
 * A throwaway PostgreSQL cluster for tests that stop and restart the database: initdb into a temp
 * directory, one postmaster on a spare port with its socket in that directory, so restarting it
 * disturbs nothing else. Runs as the `postgres` system user when the tests run as root (initdb and
 * pg_ctl refuse to run as root).
 */
import { execFile, type ExecFileOptions } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, systemUser } from './host.js';

const PG_LIB = '/usr/lib/postgresql';

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  /** `pg_ctl stop -m fast` (or the given mode); resolves once the server is down. */
  stop(mode?: 'smart' | 'fast' | 'immediate'): Promise<void>;
  /** `pg_ctl start` on the same port and data directory; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops the server if running and removes the temp directory. Idempotent. */
  close(): Promise<void>;
}

/** The bin directory of the newest installed PostgreSQL with an initdb, if any. */
export function findPostgresBin(): string | undefined {
  if (!existsSync(PG_LIB)) return undefined;
  const versions = readdirSync(PG_LIB)
    .filter((v) => existsSync(path.join(PG_LIB, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? path.join(PG_LIB, versions[0]!, 'bin') : undefined;
}

function run(file: string, args: string[], opts: ExecFileOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { ...opts, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error)
        reject(new Error(`${path.basename(file)} ${args.join(' ')} failed: ${stderr || error.message}`));
      else resolve(String(stdout));
    });
  });
}

/** Undefined when no PostgreSQL binaries are installed. */
export async function startPrivatePostgres(): Promise<PrivatePostgres | undefined> {
  const bin = findPostgresBin();
  if (!bin) return undefined;
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? systemUser('postgres') : undefined;
  if (asRoot && !owner) throw new Error('running as root and there is no postgres user to run initdb as');
  const dir = await mkdtemp(path.join(tmpdir(), 'relay-pg-'));
  if (owner) await chown(dir, owner.uid, owner.gid);
  const data = path.join(dir, 'data');
  const log = path.join(dir, 'server.log');
  const port = await freePort();
  // LC_ALL=C: initdb fails on locales the container may not have generated.
  const execOpts: ExecFileOptions = {
    ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
    env: { PATH: process.env.PATH ?? '', LC_ALL: 'C', LANG: 'C' },
    cwd: dir,
  };
  const pgCtl = path.join(bin, 'pg_ctl');
  let running = false;
  let closed = false;
  const start = async (): Promise<void> => {
    const serverOpts = `-k ${dir} -p ${port} -c listen_addresses=127.0.0.1`;
    await run(pgCtl, ['start', '-w', '-t', '30', '-D', data, '-l', log, '-o', serverOpts], execOpts);
    running = true;
  };
  const stop = async (mode: 'smart' | 'fast' | 'immediate' = 'fast'): Promise<void> => {
    await run(pgCtl, ['stop', '-w', '-t', '30', '-D', data, '-m', mode], execOpts);
    running = false;
  };
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    if (running) await stop('immediate').catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await run(
      path.join(bin, 'initdb'),
      ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8'],
      execOpts,
    );
    await start();
  } catch (e) {
    await close();
    throw e;
  }
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, port, stop, start, close };
}
