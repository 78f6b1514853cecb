/**
 * The Node lines relay-bot supports: 20 (which these machines still run) and the LTS lines 22, 24
 * and 26 (26 since private X25519 / Ed25519 keys are imported as JWK with an empty `x`, which
 * Node 26 refuses, only where a start-up probe passes: framework/relay/okp-import.ts). The embedded
 * SQLite runs on better-sqlite3 12 on Node 20 and on 13 (the optional dependency better-sqlite3-13)
 * where Node-API 10 exists, 22.14 and later (framework/store/sqlite-driver.ts): 12 aborts on Node
 * 24.19+ and 26 when the garbage collector frees a prepared statement (test/store/sqlite-gc.test.ts;
 * `npm run test:node -- 24` runs it there), 13 segfaults on Node 20. 12 is a plain dependency, so
 * it must still install everywhere.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const json = (file: string): Record<string, unknown> =>
  JSON.parse(readFileSync(path.join(ROOT, file), 'utf8')) as Record<string, unknown>;
const pkg = json('package.json') as { engines: { node: string }; scripts: Record<string, string> };
const lock = json('package-lock.json') as {
  packages: Record<string, { version: string; optional?: boolean; engines?: { node?: string } }>;
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

test('engines lists 20 (the machines here) and the LTS lines 22, 24 and 26', () => {
  expect(supported).toEqual([20, 22, 24, 26]);
});

test('engines starts 22 at 22.14, the first 22 with Node-API 10 (better-sqlite3 13)', () => {
  expect(pkg.engines.node).toMatch(/(^|\|\|)\s*\^22\.14\.0\s*(\|\||$)/);
});

test('better-sqlite3 13 is an optional dependency npm installs on every supported line but 20', () => {
  const sqlite13 = lock.packages['node_modules/better-sqlite3-13']!;
  expect(Number(sqlite13.version.split('.')[0])).toBe(13);
  expect(sqlite13.optional).toBe(true);
  // npm skips an optional dependency whose engines exclude the running Node: that is what keeps
  // `npm ci` on Node 20 from installing a module that would segfault there.
  expect(sqlite13.engines!.node).toBe('>=22');
  for (const major of supported) expect(major >= 22).toBe(major !== 20);
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
