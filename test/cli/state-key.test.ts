/** `relay-bot keys rotate-state-key` as a subprocess on SQLite: refuses a wrong old key, rotates with the right one. */
import { runCli, tempDir } from './helpers.js';

let tmp: { dir: string; remove(): Promise<void> };
let userId: string;
const OLD = 'an old passphrase nobody guesses';
const NEW = 'ab'.repeat(32);

beforeAll(async () => {
  tmp = await tempDir('relay-state-key-');
  const id = await runCli(['id'], { cwd: tmp.dir, env: { RELAY_STATE_KEY: OLD } });
  expect(id.code).toBe(0);
  userId = id.stdout.trim();
}, 60_000);
afterAll(() => tmp.remove());

const keysShow = (key: string) => runCli(['keys', 'show'], { cwd: tmp.dir, env: { RELAY_STATE_KEY: key } });

test('rotate-state-key without RELAY_STATE_KEY names the fix (exit 2)', async () => {
  const r = await runCli(['keys', 'rotate-state-key'], { cwd: tmp.dir, env: { RELAY_NEW_STATE_KEY: NEW } });
  expect(r.code).toBe(2);
  expect(r.stderr).toContain('Fix: set RELAY_STATE_KEY');
}, 60_000);

test('rotate-state-key refuses a wrong old key and changes nothing', async () => {
  const r = await runCli(['keys', 'rotate-state-key'], {
    cwd: tmp.dir,
    env: { RELAY_STATE_KEY: 'not the old passphrase', RELAY_NEW_STATE_KEY: NEW },
  });
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('wrong RELAY_STATE_KEY');
  expect(r.stderr).toContain('Nothing in this database was changed');
  const shown = await keysShow(OLD);
  expect(shown.code).toBe(0);
  expect(shown.stdout).toContain(`user id:            ${userId}`);
}, 60_000);

test('rotate-state-key re-seals under the key read from stdin; only the new key opens the store', async () => {
  const r = await runCli(['keys', 'rotate-state-key'], {
    cwd: tmp.dir,
    env: { RELAY_STATE_KEY: OLD },
    input: `${NEW}\n`,
  });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/relay\.sqlite: [1-9]\d* sealed rows re-sealed/);
  expect(r.stdout).toMatch(/cli\.sqlite: does not exist/);
  expect(r.stdout + r.stderr).not.toContain(NEW);

  const old = await keysShow(OLD);
  expect(old.code).not.toBe(0);
  expect(old.stderr).toContain('wrong RELAY_STATE_KEY');
  const shown = await keysShow(NEW);
  expect(shown.code).toBe(0);
  expect(shown.stdout).toContain(`user id:            ${userId}`);
  expect(shown.stdout).toContain('encrypted at rest:  yes');
}, 90_000);
