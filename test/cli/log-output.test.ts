/**
 * Where the CLI's logs go and how they look: JSON lines on a piped stderr, readable text when
 * stderr is a terminal (a pty from `script`), RELAY_LOG_FORMAT overriding either.
 * `relay-bot id` in an empty directory logs one warning (no RELAY_STATE_KEY) and needs no broker.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { cliEnv, MAIN, ROOT, runCli, tempDir } from './helpers.js';

const TSX = pathToFileURL(createRequire(path.join(ROOT, 'package.json')).resolve('tsx')).href;
const WARNING = 'RELAY_STATE_KEY is not set';
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/;

let tmp: { dir: string; remove(): Promise<void> };
beforeAll(async () => {
  tmp = await tempDir('relay-log-');
});
afterAll(() => tmp.remove());

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** `relay-bot id` with stdin, stdout and stderr on a pseudo-terminal; returns what the terminal showed. */
function idInTerminal(
  env: Record<string, string | undefined>,
): Promise<{ code: number | null; screen: string }> {
  const command = [process.execPath, '--import', TSX, MAIN, 'id'].map(quote).join(' ');
  // script -e: exit with the command's code; -q: no "Script started" lines; log file /dev/null.
  const child = spawn('script', ['-qec', command, '/dev/null'], {
    cwd: tmp.dir,
    env: cliEnv({ RELAY_LOG_LEVEL: 'info', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let screen = '';
  child.stdout.on('data', (d: Buffer) => (screen += d.toString()));
  child.stderr.on('data', (d: Buffer) => (screen += d.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, screen })));
}

test('stderr piped: JSON lines pino writes, stdout only the id', async () => {
  const r = await runCli(['id'], { cwd: tmp.dir, env: { RELAY_LOG_LEVEL: 'info' } });
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^[0-9a-f]{32}\n$/);
  const lines = r.stderr.trim().split('\n');
  const records = lines.map((l) => JSON.parse(l) as { level: number; msg: string });
  expect(records.find((rec) => rec.msg.includes(WARNING))?.level).toBe(40);
  expect(r.stderr).not.toMatch(ANSI);
}, 60_000);

test('stderr a terminal: readable lines with the level in words and colours, no JSON', async () => {
  const r = await idInTerminal({});
  expect(r.code).toBe(0);
  const warning = r.screen.split(/\r?\n/).find((l) => l.includes(WARNING));
  expect(warning).toBeDefined();
  expect(warning).toMatch(ANSI);
  expect(warning!.replace(new RegExp(ANSI.source, 'g'), '')).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: /);
  expect(r.screen).not.toContain('{"level"');
}, 60_000);

test('NO_COLOR: readable lines without colours', async () => {
  const r = await idInTerminal({ NO_COLOR: '1' });
  expect(r.code).toBe(0);
  expect(r.screen).toMatch(new RegExp(`\\] WARN: ${WARNING}`));
  expect(r.screen).not.toMatch(ANSI);
}, 60_000);

test('RELAY_LOG_FORMAT=json keeps JSON lines on a terminal', async () => {
  const r = await idInTerminal({ RELAY_LOG_FORMAT: 'json' });
  expect(r.code).toBe(0);
  const line = r.screen.split(/\r?\n/).find((l) => l.includes(WARNING));
  expect(JSON.parse(line!)).toMatchObject({ level: 40 });
}, 60_000);

test('RELAY_LOG_FORMAT=pretty gives readable lines on a pipe, and a bad value names the fix', async () => {
  const pretty = await runCli(['id'], { cwd: tmp.dir, env: { RELAY_LOG_FORMAT: 'pretty' } });
  expect(pretty.code).toBe(0);
  expect(pretty.stderr).toContain(`WARN: ${WARNING}`);
  expect(pretty.stderr).not.toMatch(ANSI);
  const bad = await runCli(['id'], { cwd: tmp.dir, env: { RELAY_LOG_FORMAT: 'xml' } });
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('logging.format');
  expect(bad.stderr).toContain('auto, json, pretty');
}, 60_000);
