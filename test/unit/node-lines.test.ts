/**
 * The Node lines relay-bot supports: 20 (which these machines still run) and 22 (LTS). better-sqlite3,
 * the embedded SQLite, must install on every one of them, which keeps it on 12.x (13.x needs Node
 * 22+); 12.x aborts on Node 24.19+ and 26 when the garbage collector frees a prepared statement
 * (test/store/sqlite-gc.test.ts, run there with `npm run test:node -- 24 test/store/sqlite-gc.test.ts`),
 * so 24 and 26 wait for better-sqlite3 13, once Node 20 is gone from the machines.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const json = (file: string): Record<string, unknown> =>
  JSON.parse(readFileSync(path.join(ROOT, file), 'utf8')) as Record<string, unknown>;
const pkg = json('package.json') as { engines: { node: string }; scripts: Record<string, string> };
const lock = json('package-lock.json') as {
  packages: Record<string, { version: string; engines?: { node?: string } }>;
};

/** The major versions a `^a.b.c || ^d.e.f` range admits. */
function majorsOf(range: string): number[] {
  return range.split('||').map((part) => {
    const m = /^\s*\^(\d+)\.\d+\.\d+\s*$/.exec(part);
    if (!m) throw new Error(`engines.node part "${part}" is not ^major.minor.patch`);
    return Number(m[1]);
  });
}

/** The majors better-sqlite3 lists as "20.x || 22.x || …". */
function sqliteMajors(range: string): number[] {
  return range.split('||').map((part) => Number(/^\s*(\d+)\.x\s*$/.exec(part)?.[1] ?? NaN));
}

const supported = majorsOf(pkg.engines.node);

test('engines lists 20 (the machines here) and the LTS line 22', () => {
  expect(supported).toEqual([20, 22]);
});

test('the better-sqlite3 installed is one whose engines covers every supported line', () => {
  const sqlite = lock.packages['node_modules/better-sqlite3']!;
  const majors = sqliteMajors(sqlite.engines!.node!);
  for (const major of supported) expect(majors).toContain(major);
});

test('the Dockerfile builds and runs on a supported line other than 20', () => {
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const lines = [...dockerfile.matchAll(/^FROM node:(\d+)-/gm)].map((m) => Number(m[1]));
  expect(lines.length).toBeGreaterThan(0);
  for (const major of lines) {
    expect(supported).toContain(major);
    expect(major).not.toBe(20);
  }
});

test('the running Node is one of them', () => {
  expect(supported).toContain(Number(process.versions.node.split('.')[0]));
});
