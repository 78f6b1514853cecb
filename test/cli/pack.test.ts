/**
 * What `npm pack` ships: the built code with its types for every entry point in package.json's
 * `exports` and `bin`, the deploy files, README and the protocol; no tests, benches, data, source
 * maps or stale build output (every dist file has its source); and `relay-bot init` output installs
 * the tarball itself, builds (tsc, so the types resolve) and passes its own tests, as a user's
 * project would from the registry.
 *
 * Only with RELAY_TEST_PACK=1 (.ci/run runs it after the suite): `npm pack` rebuilds dist/, which
 * must not happen while test/cli/init.test.ts builds it too.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { cliEnv, ROOT, runCli, tempDir, type RunResult } from './helpers.js';

interface PackResult {
  filename: string;
  files: Array<{ path: string }>;
}

function run(
  cmd: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<RunResult> {
  const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
}

const explain = (step: string, r: RunResult): string =>
  `${step} exited with ${r.code ?? r.signal}\nstdout:\n${r.stdout.slice(-3000)}\nstderr:\n${r.stderr.slice(-3000)}`;

/** The machine's environment for npm (registry, proxy, CA settings), without the test runner's. */
function npmEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  for (const k of Object.keys(env))
    if (k.startsWith('RELAY_') || k.startsWith('npm_lifecycle')) delete env[k];
  for (const [k, v] of Object.entries(extra)) if (v === undefined) delete env[k];
  return env;
}

const manifestVersion = (): string =>
  (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  exports: Record<string, string>;
  bin: Record<string, string>;
  types: string;
};

const enabled = process.env.RELAY_TEST_PACK === '1';
let tmp: { dir: string; remove(): Promise<void> };
let packed: PackResult;
let files: string[];

beforeAll(async () => {
  if (!enabled) return;
  tmp = await tempDir('relay-pack-');
  // npm pack runs prepare (the build), so the tarball holds a fresh dist/.
  const r = await run('npm', ['pack', '--json', '--pack-destination', tmp.dir], ROOT, npmEnv(), 240_000);
  if (r.code !== 0) throw new Error(explain('npm pack', r));
  packed = (JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as PackResult[])[0]!;
  files = packed.files.map((f) => f.path);
}, 300_000);

afterAll(() => tmp?.remove());

const packTest = enabled ? test : test.skip;

packTest('it holds every entry point with its types, and the bin', () => {
  const targets = Object.values(pkg.exports).filter((t) => t.endsWith('.js'));
  expect(targets.length).toBeGreaterThan(0);
  for (const t of targets) {
    const js = path.posix.normalize(t);
    expect(files).toContain(js);
    expect(files).toContain(js.replace(/\.js$/, '.d.ts'));
  }
  expect(files).toContain(path.posix.normalize(pkg.types));
  for (const bin of Object.values(pkg.bin)) expect(files).toContain(path.posix.normalize(bin));
  expect(files).toContain('package.json');
  expect(files).toContain('README.md');
});

packTest('nothing else: no tests, benches, data, source maps, or build output without a source', () => {
  const unexpected = files.filter((f) => {
    if (['package.json', 'README.md', 'LICENSE', 'docs/protocol.md'].includes(f)) return false;
    if (f.startsWith('deploy/')) return false;
    const m = /^dist\/(.+)\.(js|d\.ts)$/.exec(f);
    if (!m) return true;
    const source = path.join(ROOT, `${m[1]}.ts`);
    return /(^|\/)(test|bench)\//.test(m[1]!) || m[1]!.endsWith('.test') || !existsSync(source);
  });
  expect(unexpected).toEqual([]);
  expect(files.some((f) => /\.(sqlite|db|map|tgz)$/.test(f))).toBe(false);
});

packTest(
  'relay-bot init output installs the tarball, builds against its types and passes its own tests',
  async () => {
    const tarball = path.join(tmp.dir, packed.filename);
    const dir = path.join(tmp.dir, 'my-bot');
    await mkdir(dir);
    const init = await runCli(['init', dir], { cwd: tmp.dir, env: { RELAY_BOT_LOCAL: tarball } });
    if (init.code !== 0) throw new Error(explain('relay-bot init', init));
    const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(manifest.dependencies['relay-bot']).toBe(`file:${tarball}`);

    // better-sqlite3's native module for this Node, as prebuild-install takes it from a local
    // prebuild: the one npm built in this checkout (the same version), instead of a download
    // (no GitHub here) or a compile.
    const sqlite = JSON.parse(
      readFileSync(path.join(ROOT, 'node_modules/better-sqlite3/package.json'), 'utf8'),
    ) as {
      version: string;
    };
    const prebuilds = path.join(tmp.dir, 'prebuilds');
    await mkdir(prebuilds);
    const name = `better-sqlite3-v${sqlite.version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
    const tar = await run(
      'tar',
      [
        '-C',
        path.join(ROOT, 'node_modules/better-sqlite3'),
        '-czf',
        path.join(prebuilds, name),
        'build/Release/better_sqlite3.node',
      ],
      ROOT,
      process.env,
      60_000,
    );
    if (tar.code !== 0) throw new Error(explain('tar', tar));

    const env = npmEnv({
      npm_config_better_sqlite3_local_prebuilds: prebuilds,
      TSX_TSCONFIG_PATH: undefined,
    });
    const install = await run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline'],
      dir,
      env,
      400_000,
    );
    if (install.code !== 0) throw new Error(explain('npm install', install));
    // Installed from the tarball: a real directory, not a link to this checkout.
    expect(existsSync(path.join(dir, 'node_modules/relay-bot/dist/framework/bot/index.d.ts'))).toBe(true);
    expect(existsSync(path.join(dir, 'node_modules/relay-bot/test'))).toBe(false);

    const build = await run('npm', ['run', 'build'], dir, env, 120_000);
    if (build.code !== 0) throw new Error(explain('npm run build (tsc)', build));

    const tests = await run('npm', ['test'], dir, env, 120_000);
    if (tests.code !== 0) throw new Error(explain('npm test', tests));
    expect(tests.stdout).toMatch(/^\W*pass 1$/m);
    expect(tests.stdout).toMatch(/^\W*fail 0$/m);

    // The installed bin prints commands that work in such a project.
    const version = await run(
      path.join(dir, 'node_modules/.bin/relay-bot'),
      ['--version'],
      dir,
      cliEnv(),
      60_000,
    );
    expect(version.stdout.trim()).toBe(manifestVersion());
  },
  600_000,
);
