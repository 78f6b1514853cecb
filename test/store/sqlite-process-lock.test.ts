/**
 * SQLite serves one process (issue 13): a second process, or a second store in this one, opening
 * the same file is refused at once with a StorageError naming the fix, and the lock goes away with
 * the process that held it, however it ended.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { StorageError } from '../../framework/relay/index.js';
import { createRelayDataSource, createRelayStore, DatabaseInUseError } from '../../framework/store/index.js';
import { sqliteFile, tempDir } from './helpers.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const dir = tempDir();
afterAll(() => dir.remove());

interface Holder {
  process: ChildProcess;
  /** Resolves with the first line the child printed. */
  line: Promise<string>;
  exited: Promise<number | null>;
}

function startHolder(sqlitePath: string): Holder {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'test/support/sqlite-holder.ts')],
    {
      cwd: ROOT,
      env: { ...process.env, RELAY_SQLITE_PATH: sqlitePath, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  const line = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const end = out.indexOf('\n');
      if (end >= 0) resolve(out.slice(0, end));
    });
    child.once('exit', (code) => reject(new Error(`sqlite-holder exited (${code}) after printing ${out}`)));
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { process: child, line, exited };
}

async function killHolder(h: Holder): Promise<void> {
  if (h.process.exitCode === null && h.process.signalCode === null) h.process.kill('SIGKILL');
  await h.exited;
}

const FIX = /use Postgres \(database\.url\) to run several replicas/;

describe('SQLite one-process lock', () => {
  it('refuses a file another process holds, at once and naming the fix; frees it when that process is killed', async () => {
    const file = sqliteFile(dir.path);
    const holder = startHolder(file);
    try {
      expect(await holder.line).toBe('HOLDING');
      const started = performance.now();
      const refused = await createRelayDataSource({ sqlitePath: file }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(refused).toBeInstanceOf(DatabaseInUseError);
      expect(refused).toBeInstanceOf(StorageError);
      expect(refused).toMatchObject({ code: 'STORAGE' });
      expect((refused as Error).message).toMatch(/already open in another process/);
      expect((refused as Error).message).toMatch(FIX);
      // No wait on the 5 s busy timeout: a second bot fails at once.
      expect(performance.now() - started).toBeLessThan(2000);

      // A tool that only inspects may opt out.
      const inspector = await createRelayDataSource({ sqlitePath: file, sqliteProcessLock: false });
      await inspector.destroy();
    } finally {
      await killHolder(holder);
    }
    // SIGKILL leaves no stale lock behind.
    const after = await createRelayStore({ sqlitePath: file });
    await after.close();
  }, 60_000);

  it('a second process refuses to start while this one holds the file, and starts once it closed it', async () => {
    const file = sqliteFile(dir.path);
    const store = await createRelayStore({ sqlitePath: file });
    const refused = startHolder(file);
    const line = await refused.line.catch((e: Error) => e.message);
    expect(line).toMatch(/^REFUSED DatabaseInUseError /);
    expect(line).toMatch(FIX);
    expect(await refused.exited).toBe(3);

    await store.close();
    const holder = startHolder(file);
    try {
      expect(await holder.line).toBe('HOLDING');
    } finally {
      await killHolder(holder);
    }
  }, 60_000);

  it('refuses a second store on the same file in this process too, until the first is closed', async () => {
    const file = sqliteFile(dir.path);
    const first = await createRelayStore({ sqlitePath: file });
    await expect(createRelayStore({ sqlitePath: file })).rejects.toThrow(FIX);
    await first.close();
    const second = await createRelayStore({ sqlitePath: file });
    await second.close();
  });

  it('does not lock an in-memory database', async () => {
    const a = await createRelayDataSource({ sqlitePath: ':memory:' });
    const b = await createRelayDataSource({ sqlitePath: ':memory:' });
    await a.destroy();
    await b.destroy();
  });
});
