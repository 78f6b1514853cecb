/**
 * The operator keys of issues #13 and #14: broker.keepaliveSeconds, replica.fenceAfterMs and the
 * tasks section, from the file or the environment, validated naming the key and the fix, and
 * passed on to the client and the runtime the way `relay-bot start` builds them.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { Bot, BotRuntime, OnCommand, DEFAULT_TASK_LIMITS } from '../../index.js';
import { LeaseKeeper, MemoryLeaseStore } from '../../framework/relay/index.js';
import { transportOptions } from '../../framework/relay/client-options.js';
import { loadConfig } from '../../cli/config.js';
import { UsageError } from '../../cli/errors.js';
import { replicaClientOptions, runtimeOptions } from '../../cli/commands/start.js';
import { runCli, tempDir } from './helpers.js';

const log = pino({ level: 'silent' });
let tmp: { dir: string; remove(): Promise<void> };
beforeAll(async () => {
  tmp = await tempDir('relay-operator-');
});
afterAll(() => tmp.remove());

async function file(name: string, text: string): Promise<string> {
  const p = path.join(tmp.dir, name);
  await writeFile(p, text);
  return p;
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error('expected a UsageError');
}

@Bot({ name: 'researcher' })
class Researcher {
  @OnCommand('research', { task: true })
  research(): string {
    return 'done';
  }
}

describe('broker.keepaliveSeconds and replica.fenceAfterMs', () => {
  test('from the file reach the transport and the replica options', async () => {
    const f = await file('fence.yaml', 'broker:\n  keepaliveSeconds: 10\nreplica:\n  fenceAfterMs: 25000\n');
    const c = loadConfig({ file: f, env: {}, cwd: tmp.dir });
    expect(c.broker.keepaliveSeconds).toBe(10);
    expect(c.replica.fenceAfterMs).toBe(25_000);
    const t = transportOptions({ url: 'mqtt://127.0.0.1:1883', keepaliveSeconds: 10 }, 'ab'.repeat(16), 1024);
    expect(t.keepaliveSeconds).toBe(10);
    const keeper = new LeaseKeeper({ store: new MemoryLeaseStore(), replica: { replicaId: 'bots/0' } });
    const store = new MemoryLeaseStore();
    const opts = replicaClientOptions(c, keeper, store);
    expect(opts).toEqual({
      replicaId: 'bots/0',
      registry: store,
      membership: keeper,
      sessionKeeper: keeper,
      fenceAfterMs: 25_000,
    });
  });

  test('left out: the framework defaults (no fenceAfterMs passed, 60 s applies)', () => {
    const c = loadConfig({ env: {}, cwd: tmp.dir });
    expect(c.broker.keepaliveSeconds).toBeUndefined();
    const keeper = new LeaseKeeper({ store: new MemoryLeaseStore(), replica: { replicaId: 'bots/1' } });
    expect(replicaClientOptions(c, keeper, new MemoryLeaseStore()).fenceAfterMs).toBeUndefined();
  });

  test('from RELAY_BROKER_KEEPALIVE and RELAY_FENCE_AFTER_MS', () => {
    const c = loadConfig({
      env: { RELAY_BROKER_KEEPALIVE: '15', RELAY_FENCE_AFTER_MS: '40000' },
      cwd: tmp.dir,
    });
    expect(c.broker.keepaliveSeconds).toBe(15);
    expect(c.replica.fenceAfterMs).toBe(40_000);
  });

  test('bad values name the key, the value and the fix', async () => {
    const zero = await file('zero.yaml', 'broker:\n  keepaliveSeconds: 0\nreplica:\n  fenceAfterMs: 1.5\n');
    const m = messageOf(() => loadConfig({ file: zero, env: {}, cwd: tmp.dir }));
    expect(m).toMatch(/config key broker\.keepaliveSeconds in .*zero\.yaml = 0 is invalid/);
    expect(m).toMatch(/Fix: use a whole number of seconds from 1 to 65535 \(default 30\)/);
    expect(m).toMatch(/config key replica\.fenceAfterMs in .*= 1\.5 is invalid/);
    expect(m).toMatch(/Fix: use a whole number of milliseconds from 1 to 86400000 \(default 60000\)/);
    const env = messageOf(() => loadConfig({ env: { RELAY_FENCE_AFTER_MS: '60s' }, cwd: tmp.dir }));
    expect(env).toMatch(
      /^RELAY_FENCE_AFTER_MS="60s" \(config key replica\.fenceAfterMs\) is not a whole number/,
    );
    const unknown = await file('typo.yaml', 'replica:\n  fenceAfter: 100\n');
    expect(messageOf(() => loadConfig({ file: unknown, env: {}, cwd: tmp.dir }))).toMatch(
      /unknown config key replica\.fenceAfter/,
    );
  });

  test('relay-bot exits 2 on a bad replica.fenceAfterMs', async () => {
    const f = await file('cli-fence.yaml', 'replica:\n  fenceAfterMs: -5\n');
    const r = await runCli(['doctor', '--config', f], { cwd: tmp.dir, env: {} });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('replica.fenceAfterMs');
  }, 60_000);
});

describe('limits.stopGraceMs', () => {
  test('from the file reaches the BotRuntime; left out, the runtime keeps its default', async () => {
    const f = await file('grace.yaml', 'limits:\n  stopGraceMs: 250\n');
    expect(runtimeOptions(loadConfig({ file: f, env: {}, cwd: tmp.dir }), log).stopGraceMs).toBe(250);
    expect(runtimeOptions(loadConfig({ env: {}, cwd: tmp.dir }), log).stopGraceMs).toBeUndefined();
  });
});

describe('tasks section', () => {
  test('from the file reaches the BotRuntime; keys left out keep their defaults', async () => {
    const f = await file('tasks.yaml', 'tasks:\n  perUser: 1\n  total: 5\n  progressEveryMs: 250\n');
    const c = loadConfig({ file: f, env: {}, cwd: tmp.dir });
    const opts = runtimeOptions(c, log);
    expect(opts.tasks).toEqual({ perUser: 1, total: 5, progressEveryMs: 250 });
    // The runtime takes them (a bad limit would be a ConfigError here).
    expect(() => new BotRuntime([new Researcher()], opts)).not.toThrow();
    expect(runtimeOptions(loadConfig({ env: {}, cwd: tmp.dir }), log).tasks).toEqual({});
  });

  test('RELAY_TASKS_PER_USER and RELAY_TASKS_TOTAL override the file', async () => {
    const f = await file('tasks-env.yaml', 'tasks:\n  perUser: 1\n');
    const c = loadConfig({
      file: f,
      env: { RELAY_TASKS_PER_USER: '4', RELAY_TASKS_TOTAL: '8' },
      cwd: tmp.dir,
    });
    expect(c.tasks).toEqual({ perUser: 4, total: 8 });
  });

  test('bad values name the key and the fix', async () => {
    const f = await file('tasks-bad.yaml', 'tasks:\n  total: 0\n  sweepMs: "1s"\n');
    const m = messageOf(() => loadConfig({ file: f, env: {}, cwd: tmp.dir }));
    expect(m).toMatch(
      /config key tasks\.total in .* = 0 is invalid.*Fix: use a whole number from 1 to 100000 \(default 20\)/,
    );
    expect(m).toMatch(
      /config key tasks\.sweepMs in .* = "1s" is invalid.*Fix: use a whole number of milliseconds/,
    );
    const over = await file('tasks-over.yaml', 'tasks:\n  perUser: 30\n');
    expect(messageOf(() => loadConfig({ file: over, env: {}, cwd: tmp.dir }))).toMatch(
      new RegExp(
        `tasks\\.perUser .*= 30 is invalid: it is more than tasks\\.total \\(${DEFAULT_TASK_LIMITS.total}\\)`,
      ),
    );
    const list = await file('tasks-list.yaml', 'tasks: [1, 2]\n');
    expect(messageOf(() => loadConfig({ file: list, env: {}, cwd: tmp.dir }))).toMatch(
      /Fix: use a mapping with perUser, total/,
    );
  });
});
