/**
 * `relay-bot init` output passes its own tests: scaffold a project that depends on this checkout
 * (RELAY_BOT_LOCAL=1, a file: link), `npm install` it, then run its `npm test` as generated. The
 * install runs this package's `prepare` (npm run build), so the project uses a fresh dist/ through
 * the exports map ('relay-bot' and 'relay-bot/testing').
 *
 * About 15 s with a warm npm cache (init ~1 s, npm install with the build ~10 s, npm test ~2 s).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { cliEnv, runCli, tempDir, type RunResult } from './helpers.js';

/** npm settings worth keeping from the parent environment (proxy, registry, cache). */
const PASS_THROUGH = [
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'npm_config_registry',
  'npm_config_cache',
  'npm_config_userconfig',
];

function npm(args: string[], cwd: string, timeoutMs: number): Promise<RunResult> {
  const extra: Record<string, string | undefined> = {
    // The generated project has its own tsconfig.json; the CLI helpers' override must not apply.
    TSX_TSCONFIG_PATH: undefined,
    RELAY_LOG_LEVEL: undefined,
  };
  for (const k of PASS_THROUGH) if (process.env[k] !== undefined) extra[k] = process.env[k];
  const child = spawn('npm', args, { cwd, env: cliEnv(extra), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function explain(step: string, r: RunResult): string {
  return `${step} exited with ${r.code ?? r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

let tmp: { dir: string; remove(): Promise<void> };
beforeAll(async () => {
  tmp = await tempDir('relay-init-');
});
afterAll(() => tmp.remove());

test('init output passes its own tests: init, npm install, npm test', async () => {
  const dir = path.join(tmp.dir, 'weather-bot');
  const init = await runCli(['init', dir], { cwd: tmp.dir, env: { RELAY_BOT_LOCAL: '1' } });
  if (init.code !== 0) throw new Error(explain('relay-bot init', init));

  const install = await npm(['install', '--no-audit', '--no-fund', '--prefer-offline'], dir, 240_000);
  if (install.code !== 0) throw new Error(explain('npm install', install));

  const generatedTest = readFileSync(path.join(dir, 'test', 'bot.test.ts'), 'utf8');
  const testName = /test\('([^']+)'/.exec(generatedTest)?.[1];
  expect(testName).toBeDefined();

  const run = await npm(['test'], dir, 120_000);
  if (run.code !== 0) throw new Error(explain('npm test', run));
  // node:test prints TAP ("ok 1 - name", "# pass 1") off a terminal, or spec ("✔ name", "ℹ pass 1").
  expect(run.stdout).toContain(testName);
  expect(run.stdout).toMatch(/^\W*(ok 1 - |✔ )/m);
  expect(run.stdout).toMatch(/^\W*pass 1$/m);
  expect(run.stdout).toMatch(/^\W*fail 0$/m);
}, 400_000);
