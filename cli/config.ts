/**
 * relay-bot configuration: a YAML or JSON file, then environment overrides, validated with one zod
 * schema. Every error names the key (or environment variable), the bad value and the fix, and is a
 * UsageError (exit code 2).
 *
 * Paths written in a config file (sqlitePath, bot.module) are relative to that file's directory;
 * defaults and paths from the environment are relative to the working directory.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import {
  DEFAULT_BOT_SQLITE,
  DEFAULT_CLIENT_SQLITE,
  DEFAULT_CONFIG_FILES,
  EMBEDDED_BROKER_HOST,
  ENV_OVERRIDES,
  FIX,
  configSchema,
  type EnvKind,
  type RelayConfig,
} from './config-schema.js';
import { UsageError } from './errors.js';

export * from './config-schema.js';

function describeValue(v: unknown): string {
  if (v === undefined) return '(missing)';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function getPath(obj: unknown, keys: readonly PropertyKey[]): unknown {
  let cur = obj;
  for (const k of keys) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

function setPath(obj: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let cur = obj;
  for (const p of parts.slice(0, -1)) {
    const next = cur[p];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]!] = value;
}

/** `groups.allowInvitesFrom[1]` for the path ['groups', 'allowInvitesFrom', 1]. */
function keyOf(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('');
}

function fixFor(key: string): string | undefined {
  for (
    let k = key.replace(/\[\d+\]/g, '');
    k.length > 0;
    k = k.includes('.') ? k.slice(0, k.lastIndexOf('.')) : ''
  ) {
    if (FIX[k]) return FIX[k];
  }
  return undefined;
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(
      `cannot read config file ${file}: ${(e as Error).message}. Fix: check the --config path`,
    );
  }
  let data: unknown;
  try {
    data = file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
  } catch (e) {
    throw new UsageError(
      `config file ${file} is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`,
    );
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new UsageError(`config file ${file} must hold a mapping of keys (broker:, database:, bot:, ...)`);
  }
  return data as Record<string, unknown>;
}

function envValue(env: string, key: string, kind: EnvKind, raw: string): unknown {
  if (kind === 'string') return raw;
  if (kind === 'slot' && raw.trim() === 'auto') return 'auto';
  if (kind === 'int' || kind === 'slot') {
    if (!/^-?\d+$/.test(raw.trim())) {
      throw new UsageError(
        `${env}=${describeValue(raw)} (config key ${key}) is not a whole number. Fix: ${fixFor(key) ?? `set ${env} to a number`}`,
      );
    }
    return Number(raw.trim());
  }
  if (kind === 'list') return raw.split(/[\s,]+/).filter((v) => v !== '');
  return raw === 'true' || raw === '1';
}

/** The config file to read: --config, else RELAY_CONFIG, else ./bot.yaml (or .yml/.json) if present. */
export function findConfigFile(explicit: string | undefined, env = process.env, cwd = process.cwd()) {
  if (explicit) return path.resolve(cwd, explicit);
  if (env.RELAY_CONFIG) return path.resolve(cwd, env.RELAY_CONFIG);
  for (const name of DEFAULT_CONFIG_FILES) {
    const candidate = path.resolve(cwd, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

export interface LoadConfigOptions {
  /** --config */
  file?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export function loadConfig(opts: LoadConfigOptions = {}): RelayConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const file = findConfigFile(opts.file, env, cwd);
  const raw: Record<string, unknown> = file ? readConfigFile(file) : {};
  const fromEnv = new Map<string, string>();
  for (const o of ENV_OVERRIDES) {
    const v = env[o.env];
    if (v === undefined || v === '') continue;
    setPath(raw, o.key, envValue(o.env, o.key, o.kind, v));
    fromEnv.set(o.key, o.env);
  }
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        const where = issue.path.map(String).join('.');
        const keys = issue.keys.map((k) => (where ? `${where}.${k}` : k));
        return `unknown config key ${keys.join(', ')}${file ? ` in ${file}` : ''}. Fix: remove it or check the spelling (see README, "Configuration")`;
      }
      const key = keyOf(issue.path);
      const source = fromEnv.get(key.replace(/\[\d+\]/g, ''));
      const where = source
        ? `${source} (config key ${key})`
        : `config key ${key}${file ? ` in ${file}` : ''}`;
      const fix = fixFor(key);
      return `${where} = ${describeValue(getPath(raw, issue.path))} is invalid: ${issue.message}.${fix ? ` Fix: ${fix}` : ''}`;
    });
    throw new UsageError(lines.join('\n'));
  }
  const parsed = result.data;
  const baseDir = file ? path.dirname(file) : cwd;
  // A path from the file is relative to the file; from the environment or a default, to the cwd.
  const resolvePath = (key: string, value: string | undefined, fallback: string): string =>
    value === undefined ? path.resolve(cwd, fallback) : path.resolve(fromEnv.has(key) ? cwd : baseDir, value);
  const tls = parsed.broker.tls;
  const broker = {
    ...parsed.broker,
    ...(tls !== undefined
      ? {
          tls: {
            ...tls,
            ...(tls.caFile ? { caFile: resolvePath('broker.tls.caFile', tls.caFile, tls.caFile) } : {}),
            ...(tls.certFile
              ? { certFile: resolvePath('broker.tls.certFile', tls.certFile, tls.certFile) }
              : {}),
            ...(tls.keyFile ? { keyFile: resolvePath('broker.tls.keyFile', tls.keyFile, tls.keyFile) } : {}),
          },
        }
      : {}),
  };
  const bot = parsed.bot;
  const config: RelayConfig = {
    ...parsed,
    broker,
    database: {
      ...(parsed.database.url !== undefined ? { url: parsed.database.url } : {}),
      ...(parsed.database.schema !== undefined ? { schema: parsed.database.schema } : {}),
      sqlitePath: resolvePath('database.sqlitePath', parsed.database.sqlitePath, DEFAULT_BOT_SQLITE),
    },
    client: {
      ...(parsed.client.displayName !== undefined ? { displayName: parsed.client.displayName } : {}),
      ...(parsed.client.username !== undefined ? { username: parsed.client.username } : {}),
      ...(parsed.client.password !== undefined ? { password: parsed.client.password } : {}),
      database: {
        ...(parsed.client.database.url !== undefined ? { url: parsed.client.database.url } : {}),
        ...(parsed.client.database.schema !== undefined ? { schema: parsed.client.database.schema } : {}),
        sqlitePath: resolvePath(
          'client.database.sqlitePath',
          parsed.client.database.sqlitePath,
          DEFAULT_CLIENT_SQLITE,
        ),
      },
    },
    bot: {
      ...bot,
      ...(bot.module !== undefined && bot.module.startsWith('.')
        ? { module: resolvePath('bot.module', bot.module, bot.module) }
        : {}),
    },
    ...(env.RELAY_STATE_KEY ? { stateKey: env.RELAY_STATE_KEY } : {}),
    ...(file ? { file } : {}),
    baseDir,
  };
  checkClientStore(config);
  checkReplicas(config);
  return config;
}

/**
 * Replicas (broker.shareGroup) split one identity's messages through MQTT 5 shared subscriptions
 * and its single-owner duties through leases in the database: both need shared infrastructure.
 */
function checkReplicas(config: RelayConfig): void {
  const { shareGroup, replicaSlot, clientId, url } = config.broker;
  if (replicaSlot !== undefined && clientId !== undefined) {
    throw new UsageError(
      'broker.clientId and broker.replicaSlot are both set. Fix: keep one (replicaSlot gives each replica the client id relay-<user id>-<slot>)',
    );
  }
  if (shareGroup === undefined) {
    if (replicaSlot === 'auto') {
      throw new UsageError(
        'broker.replicaSlot is auto but broker.shareGroup is not set: slots are claimed among the replicas of a share group. Fix: set broker.shareGroup (RELAY_SHARE_GROUP), or remove broker.replicaSlot to run one process',
      );
    }
    return;
  }
  if (url === undefined) {
    throw new UsageError(
      `broker.shareGroup ${JSON.stringify(shareGroup)} is set but no broker.url: the embedded broker has no shared subscriptions, so it cannot serve replicas. Fix: set broker.url (RELAY_BROKER_URL) to an MQTT 5 broker with shared subscriptions such as Mosquitto (deploy/mosquitto), or remove broker.shareGroup to run one process`,
    );
  }
  if (config.database.url === undefined) {
    throw new UsageError(
      `broker.shareGroup ${JSON.stringify(shareGroup)} is set but the database is SQLite (${config.database.sqlitePath}), which one process owns. Fix: use Postgres (database.url) for replicas, or remove broker.shareGroup`,
    );
  }
  if (replicaSlot === undefined && clientId === undefined) {
    throw new UsageError(
      `broker.shareGroup ${JSON.stringify(shareGroup)} needs a client id of its own per replica. Fix: set broker.replicaSlot (RELAY_REPLICA_SLOT=0, 1, 2 …, one per replica, the same after a restart) or broker.clientId`,
    );
  }
}

/** The bot's and the CLI's identities must live in different stores: a store holds one identity. */
function checkClientStore(config: RelayConfig): void {
  const bot = config.database;
  const cli = config.client.database;
  const same =
    bot.url !== undefined
      ? cli.url === bot.url && (cli.schema ?? '') === (bot.schema ?? '')
      : cli.url === undefined && cli.sqlitePath === bot.sqlitePath;
  if (same) {
    throw new UsageError(
      'client.database is the same store as database: the CLI and the bot would share one identity. Fix: give client.database another sqlitePath (default ./data/cli.sqlite) or another Postgres schema',
    );
  }
}

/** The broker URL clients use: the configured one, else the embedded broker `start` runs. */
export function brokerUrl(config: RelayConfig): string {
  return config.broker.url ?? `mqtt://${EMBEDDED_BROKER_HOST}:${config.broker.embeddedPort}`;
}
