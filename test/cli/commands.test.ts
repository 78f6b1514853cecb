/** init, keys, migrate and doctor as subprocesses on SQLite in a temp directory. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { runCli, tempDir, ROOT } from './helpers.js';

let tmp: { dir: string; remove(): Promise<void> };
beforeAll(async () => {
  tmp = await tempDir('relay-cmds-');
});
afterAll(() => tmp.remove());

test('migrate applies the migrations once, then reports up to date', async () => {
  const first = await runCli(['migrate'], { cwd: tmp.dir });
  expect(first.code).toBe(0);
  expect(first.stdout).toMatch(/applied Initial/);
  const second = await runCli(['migrate', '--client'], { cwd: tmp.dir });
  expect(second.code).toBe(0);
  expect(second.stdout).toMatch(/relay\.sqlite: up to date/);
  expect(second.stdout).toMatch(/cli\.sqlite: applied Initial/);
}, 60_000);

test('keys show needs an identity first (exit 2), then shows it', async () => {
  const none = await runCli(['keys', 'show'], { cwd: tmp.dir });
  expect(none.code).toBe(2);
  expect(none.stderr).toContain('relay-bot id');
  const id = (await runCli(['id'], { cwd: tmp.dir })).stdout.trim();
  const shown = await runCli(['keys', 'show'], { cwd: tmp.dir });
  expect(shown.code).toBe(0);
  expect(shown.stdout).toContain(`user id:            ${id}`);
  expect(shown.stdout).toContain('encrypted at rest:  no');
}, 60_000);

test('keys rotate stores a fresh bundle and says it could not publish with no broker', async () => {
  const r = await runCli(['keys', 'rotate'], {
    cwd: tmp.dir,
    env: { RELAY_EMBEDDED_BROKER_PORT: '1' },
  });
  expect(r.stdout).toMatch(/new key bundle issued/);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('could not be published');
  expect((await runCli(['keys', 'show'], { cwd: tmp.dir })).stdout).toMatch(/key bundle: +issued/);
}, 60_000);

test('doctor reports the database and migrations, and fails on an unreachable broker', async () => {
  const r = await runCli(['doctor'], { cwd: tmp.dir, env: { RELAY_EMBEDDED_BROKER_PORT: '1' } });
  expect(r.stdout).toMatch(/^ok +database: SQLite/m);
  expect(r.stdout).toMatch(/^ok +migrations: all applied/m);
  expect(r.stdout).toMatch(/^FAIL +broker:/m);
  expect(r.stdout).toMatch(/^n\/a +clock skew: not measurable/m);
  expect(r.code).toBe(1);
}, 60_000);

test('init scaffolds a project with a harness test, and refuses a non-empty directory', async () => {
  const dir = path.join(tmp.dir, 'weather-bot');
  const r = await runCli(['init', dir], { cwd: tmp.dir, env: { RELAY_BOT_LOCAL: '1' } });
  expect(r.code).toBe(0);
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  expect(pkg.dependencies['relay-bot']).toBe(`file:${ROOT}`);
  // TypeScript pinned below 7, and the legacy decorators the bot class uses;
  // test/cli/init.test.ts runs the generated project's npm test.
  expect(pkg.devDependencies.typescript).toMatch(/^[~^]?5\./);
  const tsconfig = JSON.parse(readFileSync(path.join(dir, 'tsconfig.json'), 'utf8')) as {
    compilerOptions: Record<string, unknown>;
  };
  expect(tsconfig.compilerOptions.experimentalDecorators).toBe(true);
  for (const f of ['src/bot.ts', 'bot.yaml', 'Dockerfile', 'test/bot.test.ts', 'tsconfig.json']) {
    expect(existsSync(path.join(dir, f))).toBe(true);
  }
  const botSource = readFileSync(path.join(dir, 'src', 'bot.ts'), 'utf8');
  expect(botSource).toContain('export class WeatherBot');
  // The generated bot imports from the package root only.
  expect([...botSource.matchAll(/from '([^']+)'/g)].map((m) => m[1])).toEqual(['relay-bot']);
  expect(readFileSync(path.join(dir, 'test', 'bot.test.ts'), 'utf8')).toContain(
    "import { createTestHarness } from 'relay-bot/testing'",
  );
  const again = await runCli(['init', dir], { cwd: tmp.dir });
  expect(again.code).toBe(2);
  expect(again.stderr).toContain('--force');
  const versioned = await runCli(['init', path.join(tmp.dir, 'v')], { cwd: tmp.dir });
  const vpkg = JSON.parse(readFileSync(path.join(tmp.dir, 'v', 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  expect(versioned.code).toBe(0);
  expect(vpkg.dependencies['relay-bot']).toMatch(/^\^\d+\.\d+\.\d+/);
}, 60_000);
