/**
 * README's quick start, taken from README.md itself: `npm ci && npm start` in a fresh clone of the
 * committed HEAD, then the `npm run relay-bot -- send … /ping --wait 10` it shows prints pong, and
 * SIGTERM stops the bot with exit 0. `npm ci && npm test` cannot run inside the tests (it would
 * recurse), so the test checks that it is exactly what .ci/run runs.
 *
 * The fresh clone takes about two minutes (npm ci builds the package), so it runs only with
 * RELAY_TEST_FRESH_CLONE=1; .ci/run sets it after the main test run.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { cliEnv, ROOT, tempDir } from './helpers.js';

const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const CI_RUN = readFileSync(path.join(ROOT, '.ci', 'run'), 'utf8');

/** The shell commands of the first ```sh block after a heading, comments dropped, `&&` split. */
function commandsUnder(heading: string, block = 0): string[][] {
  const at = README.indexOf(`\n## ${heading}\n`);
  if (at < 0) throw new Error(`README has no "## ${heading}" section`);
  const blocks = [...README.slice(at).matchAll(/```sh\n([\s\S]*?)```/g)];
  const body = blocks[block]?.[1];
  if (body === undefined) throw new Error(`README "${heading}" has no sh block ${block}`);
  return body
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l !== '')
    .map((l) => l.split('&&').map((c) => c.trim()));
}

const quickStart = commandsUnder('Quick start');
const talk = commandsUnder('Quick start', 1);
/** .ci/run's commands: lines that are not comments, functions or shell control. */
const ciCommands = CI_RUN.split('\n')
  .map((l) => l.trim())
  .filter((l) => /^([A-Z_]+=\S*\s+)*npm /.test(l));

describe('README quick start', () => {
  test('it shows npm ci && npm start and npm ci && npm test', () => {
    expect(quickStart).toEqual([
      ['npm ci', 'npm start'],
      ['npm ci', 'npm test'],
    ]);
    expect(talk[0]![0]).toBe('npm run relay-bot -- send <bot user id> /ping --wait 10');
  });

  test('its test command is exactly what .ci/run runs', () => {
    const [install, test] = quickStart[1]!;
    // .ci/run adds only npm's quieting flags to the install.
    const ciInstall = ciCommands.find((c) => c.startsWith(install!));
    expect(ciInstall).toBeDefined();
    expect(ciInstall!.slice(install!.length).trim().split(/\s+/)).toEqual(
      expect.arrayContaining(['--no-audit', '--no-fund']),
    );
    expect(ciCommands).toContain(test);
    expect(ciCommands.indexOf(ciInstall!)).toBeLessThan(ciCommands.indexOf(test!));
    // And the fresh-clone test below runs there, after the main run.
    const fresh = ciCommands.findIndex((c) => c.includes('test/cli/readme.test.ts'));
    expect(fresh).toBeGreaterThan(ciCommands.indexOf(test!));
    expect(CI_RUN).toMatch(/RELAY_TEST_FRESH_CLONE=1 npm test -- test\/cli\/readme\.test\.ts/);
  });
});

/** `sh -c command` to completion, without blocking the event loop (the bot's pipes keep draining). */
function sh(
  command: string,
  opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn('sh', ['-c', command], {
    cwd: opts.cwd,
    env: opts.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Linux: the descendants of pid, with their command lines. */
async function descendants(pid: number): Promise<Array<{ pid: number; cmd: string[] }>> {
  const all: Array<{ pid: number; ppid: number; cmd: string[] }> = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmd = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0').filter(Boolean);
      all.push({ pid: Number(name), ppid, cmd });
    } catch {
      // Gone meanwhile.
    }
  }
  const out: Array<{ pid: number; cmd: string[] }> = [];
  const walk = (p: number): void => {
    for (const c of all.filter((x) => x.ppid === p)) {
      out.push(c);
      walk(c.pid);
    }
  };
  walk(pid);
  return out;
}

const fresh =
  process.env.RELAY_TEST_FRESH_CLONE === '1' &&
  existsSync(path.join(ROOT, '.git')) &&
  process.platform === 'linux'
    ? describe
    : describe.skip;

fresh('README quick start in a fresh clone (RELAY_TEST_FRESH_CLONE=1)', () => {
  let tmp: { dir: string; remove(): Promise<void> };
  let clone: string;
  let env: NodeJS.ProcessEnv;
  let started: ReturnType<typeof spawn> | undefined;

  beforeAll(async () => {
    tmp = await tempDir('relay-readme-');
    clone = path.join(tmp.dir, 'relay-bot');
    const git = spawnSync('git', ['clone', '--quiet', ROOT, clone], { encoding: 'utf8' });
    if (git.status !== 0) throw new Error(`git clone failed: ${git.stderr}`);
    env = cliEnv({
      // The clone's own tsconfig, and the warm npm cache.
      TSX_TSCONFIG_PATH: undefined,
      npm_config_cache: process.env.npm_config_cache,
      // Out of the way of the other tests' embedded broker on 1884.
      RELAY_EMBEDDED_BROKER_PORT: String(await freePort()),
      RELAY_LOG_LEVEL: 'info',
    });
  }, 60_000);

  afterAll(async () => {
    // Whatever is left of the process group this test started.
    if (started?.pid !== undefined && started.exitCode === null) {
      try {
        process.kill(-started.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await tmp?.remove();
  }, 60_000);

  test('npm ci, npm start, then send /ping prints pong; SIGTERM stops the bot with exit 0', async () => {
    const [install, start] = quickStart[0]!;
    const npmCi = await sh(`${install} --no-audit --no-fund --prefer-offline`, {
      cwd: clone,
      env,
      timeoutMs: 480_000,
    });
    if (npmCi.code !== 0) throw new Error(`${install} failed (${npmCi.code}):\n${npmCi.stderr}`);

    // Its own process group, so afterAll can clean up whatever npm leaves behind.
    const child = spawn('sh', ['-c', start!], {
      cwd: clone,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started = child;
    let out = '';
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const userId = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /user id: ([0-9a-f]{32})/.exec(out);
        if (m) resolve(m[1]!);
      });
      void exited.then((code) => reject(new Error(`npm start exited with ${code}\n${out}\n${err}`)));
    });

    const send = talk[0]![0]!.replace('<bot user id>', userId);
    const r = await sh(send, { cwd: clone, env, timeoutMs: 120_000 });
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toContain('pong');

    // npm does not pass SIGTERM on to the script (it dies of it), so signal the command the script
    // runs, `tsx cli/main.ts start`, as a process manager would; npm then exits with its code.
    const tsx = (await descendants(child.pid!)).find(
      (p) =>
        p.cmd.some((a) => a.endsWith('/.bin/tsx') || a.endsWith('tsx/dist/cli.mjs')) &&
        p.cmd.includes('start'),
    );
    expect(tsx).toBeDefined();
    process.kill(tsx!.pid, 'SIGTERM');
    expect(await exited).toBe(0);
    expect(err).toContain('"msg":"stopped"');
    expect(err).not.toContain('second signal');
  }, 600_000);
});
