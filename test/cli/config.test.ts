/** Configuration: file + environment, validation errors that name the key, value and fix (exit 2). */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { botAttachmentOptions } from '../../cli/attachments-config.js';
import { loadConfig, brokerUrl } from '../../cli/config.js';
import { UsageError } from '../../cli/errors.js';
import { groupOptions, readTls } from '../../cli/runtime.js';
import { runCli, tempDir } from './helpers.js';

let tmp: { dir: string; remove(): Promise<void> };
beforeAll(async () => {
  tmp = await tempDir('relay-config-');
});
afterAll(() => tmp.remove());

async function file(name: string, text: string): Promise<string> {
  const p = path.join(tmp.dir, name);
  await writeFile(p, text);
  return p;
}

function errorOf(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error('expected a UsageError');
}

describe('loadConfig', () => {
  test('defaults: embedded broker on 1884, SQLite under ./data, prefix relay', () => {
    const c = loadConfig({ env: {}, cwd: tmp.dir });
    expect(c.broker.url).toBeUndefined();
    expect(brokerUrl(c)).toBe('mqtt://127.0.0.1:1884');
    expect(c.database.sqlitePath).toBe(path.join(tmp.dir, 'data', 'relay.sqlite'));
    expect(c.client.database.sqlitePath).toBe(path.join(tmp.dir, 'data', 'cli.sqlite'));
    expect(c.topicPrefix).toBe('relay');
    expect(c.logging.level).toBe('info');
    expect(c.stateKey).toBeUndefined();
  });

  test('YAML file, relative paths resolved against the file, environment overrides', async () => {
    const f = await file(
      'a.yaml',
      [
        'broker:',
        '  url: mqtt://broker.example:1883',
        '  sessionExpirySeconds: 60',
        'database:',
        '  sqlitePath: state/bot.sqlite',
        'bot:',
        '  module: ./src/bot.js',
        '  options: { greeting: hi }',
        'powBits: 12',
        'topicPrefix: acme/relay',
        'logging: { level: debug }',
      ].join('\n'),
    );
    const c = loadConfig({
      file: f,
      cwd: '/',
      env: { RELAY_POW_BITS: '10', RELAY_TOPIC_PREFIX: 'other', RELAY_STATE_KEY: 'k' },
    });
    expect(c.broker.url).toBe('mqtt://broker.example:1883');
    expect(c.broker.sessionExpirySeconds).toBe(60);
    expect(c.database.sqlitePath).toBe(path.join(tmp.dir, 'state', 'bot.sqlite'));
    expect(c.bot.module).toBe(path.join(tmp.dir, 'src', 'bot.js'));
    expect(c.bot.options).toEqual({ greeting: 'hi' });
    expect(c.powBits).toBe(10);
    expect(c.topicPrefix).toBe('other');
    expect(c.logging.level).toBe('debug');
    expect(c.stateKey).toBe('k');
  });

  test('JSON file and DATABASE_URL', async () => {
    const f = await file('b.json', JSON.stringify({ database: { schema: 'bots' } }));
    const c = loadConfig({ file: f, env: { DATABASE_URL: 'postgres://u@h:5432/db' } });
    expect(c.database.url).toBe('postgres://u@h:5432/db');
    expect(c.database.schema).toBe('bots');
  });

  test('./bot.yaml is picked up when no --config is given', async () => {
    const { dir, remove } = await tempDir('relay-config-default-');
    try {
      await writeFile(path.join(dir, 'bot.yaml'), 'topicPrefix: found\n');
      expect(loadConfig({ env: {}, cwd: dir }).topicPrefix).toBe('found');
    } finally {
      await remove();
    }
  });

  test.each([
    ['broker:\n  url: http://x\n', 'broker.url', '"http://x"', 'mqtt://127.0.0.1:1883'],
    ['powBits: 40\n', 'powBits', '40', '0 to 28'],
    ['powBits: many\n', 'powBits', '"many"', '0 to 28'],
    ['topicPrefix: "a/#"\n', 'topicPrefix', '"a/#"', "'#'"],
    ['logging:\n  level: loud\n', 'logging.level', '"loud"', 'one of fatal'],
    ['database:\n  url: mysql://x\n', 'database.url', '"mysql://x"', 'postgres://'],
    ['limits:\n  handlerTimeoutMs: -5\n', 'limits.handlerTimeoutMs', '-5', 'positive'],
    [
      'attachments:\n  fetch:\n    allowHosts: [files.internal, "http://files.internal"]\n',
      'attachments.fetch.allowHosts[1]',
      '"http://files.internal"',
      'files.internal (no scheme, port or path)',
    ],
    ['attachments:\n  blobTtlSeconds: 0\n', 'attachments.blobTtlSeconds', '0', '30 days'],
    [
      'attachments:\n  fetch: { allowPrivateNetworks: yes }\n',
      'attachments.fetch.allowPrivateNetworks',
      '"yes"',
      'true or false',
    ],
    ['limits:\n  stopGraceMs: -1\n', 'limits.stopGraceMs', '-1', '0 or more'],
  ])('bad value in %j is named with the value and the fix', async (yaml, key, value, fix) => {
    const f = await file('bad.yaml', yaml);
    const e = errorOf(() => loadConfig({ file: f, env: {} }));
    expect(e.message).toContain(key);
    expect(e.message).toContain(value);
    expect(e.message).toContain(fix);
    expect(e.exitCode).toBe(2);
  });

  test('attachments.fetch and blobTtlSeconds reach the bot', async () => {
    const f = await file(
      'fetch.yaml',
      'attachments:\n  blobTtlSeconds: 86400\n  fetch: { allowHosts: [files.internal, 10.0.0.0/8], allowPrivateNetworks: true }\n',
    );
    const c = loadConfig({ file: f, env: {} });
    expect(botAttachmentOptions(c.attachments, c.baseDir).blobTtlSeconds).toBe(86400);
    expect(botAttachmentOptions(c.attachments, c.baseDir).fetch).toEqual({
      allowHosts: ['files.internal', '10.0.0.0/8'],
      allowPrivateNetworks: true,
    });
    expect(
      botAttachmentOptions(loadConfig({ env: {}, cwd: tmp.dir }).attachments, tmp.dir).fetch,
    ).toBeUndefined();
  });

  test('an unknown key is named', async () => {
    const f = await file('typo.yaml', 'broker:\n  urll: mqtt://x\n');
    expect(errorOf(() => loadConfig({ file: f, env: {} })).message).toMatch(
      /unknown config key broker\.urll/,
    );
  });

  test('a bad environment value names the variable', () => {
    const e = errorOf(() => loadConfig({ env: { RELAY_POW_BITS: 'lots' }, cwd: tmp.dir }));
    expect(e.message).toContain('RELAY_POW_BITS');
    expect(e.message).toContain('"lots"');
    const e2 = errorOf(() => loadConfig({ env: { RELAY_BROKER_URL: 'tcp://x' }, cwd: tmp.dir }));
    expect(e2.message).toContain('RELAY_BROKER_URL (config key broker.url)');
  });

  test('metrics: port from the file or RELAY_METRICS_PORT, host 127.0.0.1 unless set', async () => {
    const f = await file('metrics.yaml', 'metrics:\n  port: 9464\n');
    expect(loadConfig({ file: f, env: {} }).metrics).toEqual({ port: 9464, host: '127.0.0.1' });
    expect(
      loadConfig({ env: { RELAY_METRICS_PORT: '0', RELAY_METRICS_HOST: '0.0.0.0' }, cwd: tmp.dir }).metrics,
    ).toEqual({ port: 0, host: '0.0.0.0' });
    expect(loadConfig({ env: {}, cwd: tmp.dir }).metrics.port).toBeUndefined();
    const e = errorOf(() => loadConfig({ env: { RELAY_METRICS_PORT: '70000' }, cwd: tmp.dir }));
    expect(e.message).toContain('RELAY_METRICS_PORT (config key metrics.port)');
    expect(e.message).toContain('Fix: use a free TCP port');
  });

  test('broker.tls file paths resolve against the config file and are read when the client is made', async () => {
    const f = await file(
      'tls.yaml',
      'broker:\n  url: mqtts://x:8883\n  tls: { caFile: ca.pem, rejectUnauthorized: true }\n',
    );
    const config = loadConfig({ file: f, env: {} });
    expect(config.broker.tls?.caFile).toBe(path.join(path.dirname(f), 'ca.pem'));
    const e = errorOf(() => readTls(config.broker.tls!));
    expect(e.message).toMatch(
      /broker\.tls\.caFile: cannot read .*ca\.pem \(ENOENT\)\. Fix: give the path of a readable PEM file/,
    );
    await writeFile(path.join(path.dirname(f), 'ca.pem'), '-----BEGIN CERTIFICATE-----\n');
    const tls = readTls(config.broker.tls!);
    expect(tls.rejectUnauthorized).toBe(true);
    expect(Buffer.from(tls.ca as Buffer).toString()).toContain('BEGIN CERTIFICATE');
  });

  test('the CLI and the bot cannot share one store', async () => {
    const f = await file(
      'same.yaml',
      'database: { sqlitePath: x.sqlite }\nclient: { database: { sqlitePath: x.sqlite } }\n',
    );
    expect(errorOf(() => loadConfig({ file: f, env: {} })).message).toContain('client.database');
  });

  test('an unreadable or malformed file is a usage error', async () => {
    expect(
      errorOf(() => loadConfig({ file: path.join(tmp.dir, 'missing.yaml'), env: {} })).message,
    ).toContain('--config');
    const f = await file('broken.yaml', 'broker: [\n');
    expect(errorOf(() => loadConfig({ file: f, env: {} })).message).toContain('not valid YAML');
  });
});

describe('replicas (broker.shareGroup, broker.replicaSlot)', () => {
  const PG = 'postgres://u@h:5432/db';
  const MQTT = 'mqtt://127.0.0.1:1883';

  test('from the file, or from RELAY_SHARE_GROUP and RELAY_REPLICA_SLOT', async () => {
    const f = await file(
      'replicas.yaml',
      `broker: { url: ${MQTT}, shareGroup: bots, replicaSlot: 1 }\ndatabase: { url: ${JSON.stringify(PG)} }\n`,
    );
    const fromFile = loadConfig({ file: f, env: {} });
    expect(fromFile.broker.shareGroup).toBe('bots');
    expect(fromFile.broker.replicaSlot).toBe(1);
    const fromEnv = loadConfig({
      env: { RELAY_BROKER_URL: MQTT, DATABASE_URL: PG, RELAY_SHARE_GROUP: 'relay', RELAY_REPLICA_SLOT: '2' },
    });
    expect(fromEnv.broker.shareGroup).toBe('relay');
    expect(fromEnv.broker.replicaSlot).toBe(2);
    // The environment wins over the file, so one file serves every replica.
    expect(loadConfig({ file: f, env: { RELAY_REPLICA_SLOT: '0' } }).broker.replicaSlot).toBe(0);
  });

  test('a share group on the embedded broker is refused, naming broker.url', () => {
    const m = errorOf(() =>
      loadConfig({ env: { DATABASE_URL: PG, RELAY_SHARE_GROUP: 'bots', RELAY_REPLICA_SLOT: '0' } }),
    ).message;
    expect(m).toContain('embedded broker has no shared subscriptions');
    expect(m).toContain('Fix: set broker.url');
  });

  test('a share group on SQLite is refused: use Postgres', () => {
    const m = errorOf(() =>
      loadConfig({ env: { RELAY_BROKER_URL: MQTT, RELAY_SHARE_GROUP: 'bots', RELAY_REPLICA_SLOT: '0' } }),
    ).message;
    expect(m).toContain('use Postgres (database.url) for replicas');
  });

  test('a share group needs a slot or a client id; not both', () => {
    const base = { RELAY_BROKER_URL: MQTT, DATABASE_URL: PG, RELAY_SHARE_GROUP: 'bots' };
    expect(errorOf(() => loadConfig({ env: base })).message).toContain('Fix: set broker.replicaSlot');
    expect(loadConfig({ env: { ...base, RELAY_BROKER_CLIENT_ID: 'bot-a' } }).broker.clientId).toBe('bot-a');
    expect(
      errorOf(() => loadConfig({ env: { ...base, RELAY_BROKER_CLIENT_ID: 'a', RELAY_REPLICA_SLOT: '1' } }))
        .message,
    ).toContain('broker.clientId and broker.replicaSlot are both set');
  });

  test('replicaSlot: auto (for docker compose --scale) needs a share group', async () => {
    const base = { RELAY_BROKER_URL: MQTT, DATABASE_URL: PG, RELAY_REPLICA_SLOT: 'auto' };
    expect(loadConfig({ env: { ...base, RELAY_SHARE_GROUP: 'bots' } }).broker.replicaSlot).toBe('auto');
    const f = await file('auto.yaml', `broker: { url: ${MQTT}, shareGroup: bots, replicaSlot: auto }\n`);
    expect(loadConfig({ file: f, env: { DATABASE_URL: PG } }).broker.replicaSlot).toBe('auto');
    expect(errorOf(() => loadConfig({ env: base })).message).toContain('Fix: set broker.shareGroup');
  });

  test.each([
    ['RELAY_REPLICA_SLOT', '-1', 'broker.replicaSlot'],
    ['RELAY_REPLICA_SLOT', 'one', 'broker.replicaSlot'],
    ['RELAY_SHARE_GROUP', 'a/b', 'broker.shareGroup'],
    ['RELAY_SHARE_GROUP', 'a+', 'broker.shareGroup'],
  ])('%s=%s is refused naming %s and the fix', (env, value, key) => {
    const m = errorOf(() =>
      loadConfig({ env: { RELAY_BROKER_URL: MQTT, DATABASE_URL: PG, [env]: value } }),
    ).message;
    expect(m).toContain(env);
    expect(m).toContain(key);
    expect(m).toContain('Fix:');
  });
});

describe('groups section', () => {
  const ALICE = '0123456789abcdef0123456789abcdef';
  const BOB = 'FEDCBA9876543210FEDCBA9876543210';

  test('valid: ids lowercased; allowInvitesFrom goes to the bot only, the limits to both', async () => {
    const f = await file(
      'groups.yaml',
      [
        'groups:',
        `  allowInvitesFrom: [${ALICE}, ${BOB}]`,
        '  maxMembers: 50',
        '  maxTreeNodes: 200',
        '  commitDelayMs: 500',
      ].join('\n'),
    );
    const c = loadConfig({ file: f, env: {} });
    const limits = { maxMembers: 50, maxTreeNodes: 200, commitDelayMs: 500 };
    expect(c.groups).toEqual({ allowInvitesFrom: [ALICE, BOB.toLowerCase()], ...limits });
    expect(groupOptions(c, 'bot')).toEqual({ allowInvitesFrom: [ALICE, BOB.toLowerCase()], ...limits });
    expect(groupOptions(c, 'client')).toEqual(limits);
  });

  test('absent: RelayClient defaults (anyone may invite, 250 members, 200 ms)', () => {
    const c = loadConfig({ env: {}, cwd: tmp.dir });
    expect(c.groups).toEqual({});
    expect(groupOptions(c, 'bot')).toEqual({});
  });

  test('an empty allowInvitesFrom refuses everyone and is kept as []', async () => {
    const f = await file('groups-none.yaml', 'groups:\n  allowInvitesFrom: []\n');
    expect(groupOptions(loadConfig({ file: f, env: {} }), 'bot')).toEqual({ allowInvitesFrom: [] });
  });

  test('RELAY_GROUPS_ALLOW_INVITES_FROM takes a comma- or space-separated list', () => {
    const c = loadConfig({ env: { RELAY_GROUPS_ALLOW_INVITES_FROM: `${ALICE}, ${BOB}` }, cwd: tmp.dir });
    expect(c.groups.allowInvitesFrom).toEqual([ALICE, BOB.toLowerCase()]);
    const e = errorOf(() =>
      loadConfig({ env: { RELAY_GROUPS_ALLOW_INVITES_FROM: `${ALICE} nope` }, cwd: tmp.dir }),
    );
    expect(e.message).toContain('RELAY_GROUPS_ALLOW_INVITES_FROM (config key groups.allowInvitesFrom[1])');
    expect(e.message).toContain('"nope"');
    expect(e.message).toContain('Fix: list the user ids');
  });

  test.each([
    [
      'allowInvitesFrom: abc',
      'groups.allowInvitesFrom',
      '"abc"',
      'must be a list of user ids',
      'Fix: list the user ids',
    ],
    [
      `allowInvitesFrom: [${ALICE}, xyz]`,
      'groups.allowInvitesFrom[1]',
      '"xyz"',
      'must be a user id',
      '32 hex characters',
    ],
    [
      'allowInvitesFrom: [12345]',
      'groups.allowInvitesFrom[0]',
      '12345',
      'expected string',
      'Fix: list the user ids',
    ],
    ['maxMembers: 1', 'groups.maxMembers', '1', '>=2', 'Fix: use a whole number from 2 to 250'],
    ['maxMembers: 251', 'groups.maxMembers', '251', '<=250', 'from 2 to 250'],
    ['maxMembers: 2.5', 'groups.maxMembers', '2.5', 'int', 'whole number from 2 to 250'],
    ['maxMembers: lots', 'groups.maxMembers', '"lots"', 'expected number', 'from 2 to 250'],
    [
      'maxTreeNodes: 2',
      'groups.maxTreeNodes',
      '2',
      '>=3',
      'Fix: use a whole number from 2 × groups.maxMembers − 1',
    ],
    ['maxTreeNodes: 70000', 'groups.maxTreeNodes', '70000', '<=65535', 'to 65535'],
    [
      'maxTreeNodes: 100',
      'groups.maxTreeNodes',
      '100',
      'groups.maxMembers (250) members needs 499 nodes',
      'or lower groups.maxMembers',
    ],
    [
      'commitDelayMs: 0',
      'groups.commitDelayMs',
      '0',
      '>=1',
      'Fix: use a whole number of milliseconds from 1 to 2000',
    ],
    ['commitDelayMs: 2001', 'groups.commitDelayMs', '2001', '<=2000', 'from 1 to 2000'],
  ])('groups: %s is refused naming %s, the value and the fix', async (line, key, value, why, fix) => {
    const f = await file('bad-groups.yaml', `groups:\n  ${line}\n`);
    const e = errorOf(() => loadConfig({ file: f, env: {} }));
    expect(e.message).toContain(`config key ${key} in ${f} = ${value} is invalid`);
    expect(e.message).toContain(why);
    expect(e.message).toContain(fix);
    expect(e.exitCode).toBe(2);
  });

  test('a smaller maxMembers makes a smaller maxTreeNodes valid', async () => {
    const f = await file('small.yaml', 'groups: { maxMembers: 10, maxTreeNodes: 19 }\n');
    expect(loadConfig({ file: f, env: {} }).groups).toEqual({ maxMembers: 10, maxTreeNodes: 19 });
    const g = await file('small-bad.yaml', 'groups: { maxMembers: 10, maxTreeNodes: 18 }\n');
    expect(errorOf(() => loadConfig({ file: g, env: {} })).message).toContain(
      'groups.maxMembers (10) members needs 19 nodes',
    );
  });

  test('groups must be a mapping, and unknown keys in it are named', async () => {
    const f = await file('groups-list.yaml', 'groups: [a]\n');
    const e = errorOf(() => loadConfig({ file: f, env: {} }));
    expect(e.message).toContain('config key groups');
    expect(e.message).toContain(
      'Fix: use a mapping with allowInvitesFrom, maxMembers, maxTreeNodes and commitDelayMs',
    );
    const typo = await file('groups-typo.yaml', 'groups:\n  maxMember: 5\n');
    expect(errorOf(() => loadConfig({ file: typo, env: {} })).message).toMatch(
      /unknown config key groups\.maxMember .*Fix: remove it or check the spelling/,
    );
  });
});

describe('relay-bot with a bad config', () => {
  test('exits 2 with a message naming the key', async () => {
    const f = await file('cli-bad.yaml', 'broker:\n  url: http://example.com\n');
    const r = await runCli(['id', '--config', f], { cwd: tmp.dir });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('broker.url');
    expect(r.stderr).toContain('"http://example.com"');
    expect(r.stderr).toContain('Fix:');
  }, 60_000);

  test('a bad groups value exits 2 naming the key and the fix', async () => {
    const f = await file('cli-bad-groups.yaml', 'groups:\n  maxMembers: 500\n');
    const r = await runCli(['id', '--config', f], { cwd: tmp.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('config key groups.maxMembers');
    expect(r.stderr).toContain('Fix: use a whole number from 2 to 250');
  }, 60_000);

  test('a bad environment override exits 2 too', async () => {
    const r = await runCli(['start'], { cwd: tmp.dir, env: { RELAY_LOG_LEVEL: 'chatty' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('RELAY_LOG_LEVEL');
  }, 60_000);

  test('a missing bot module exits 2 naming bot.module', async () => {
    const r = await runCli(['start'], { cwd: tmp.dir, env: { RELAY_BOT_MODULE: './nope.js' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('bot.module');
  }, 60_000);

  test('an unknown command exits 2', async () => {
    const r = await runCli(['frobnicate'], { cwd: tmp.dir });
    expect(r.code).toBe(2);
  }, 60_000);
});

test('config/bot.example.yaml is a valid configuration', () => {
  const example = path.join(path.dirname(new URL(import.meta.url).pathname), '../../config/bot.example.yaml');
  const config = loadConfig({ file: example, env: {} });
  expect(config.powBits).toBe(18);
  expect(config.broker.url).toBe('mqtt://127.0.0.1:1883');
  expect(config.database.sqlitePath).toBe(path.join(path.dirname(example), 'data/relay.sqlite'));
  expect(config.groups).toEqual({ maxMembers: 250, maxTreeNodes: 2047, commitDelayMs: 200 });
});
