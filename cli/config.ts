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
import { z } from 'zod';
import {
  DEFAULT_MAX_ENVELOPE_BYTES,
  DEFAULT_POW_BITS,
  DEFAULT_TOPIC_PREFIX,
  MAX_GROUP_MEMBERS,
  MAX_MINED_POW_BITS,
  validateTopicPrefix,
} from '../framework/relay/index.js';
import { UsageError } from './errors.js';
import { LOG_FORMATS } from './log.js';
import { isUserIdHex } from './user-id.js';

export const DEFAULT_CONFIG_FILES = ['bot.yaml', 'bot.yml', 'bot.json'];
export const DEFAULT_BOT_SQLITE = './data/relay.sqlite';
export const DEFAULT_CLIENT_SQLITE = './data/cli.sqlite';
export const EMBEDDED_BROKER_HOST = '127.0.0.1';
export const DEFAULT_EMBEDDED_BROKER_PORT = 1884;
export const DEFAULT_METRICS_HOST = '127.0.0.1';
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const POSTGRES_URL = /^postgres(ql)?:\/\/\S+$/i;
const BROKER_URL = /^(mqtts?|wss?):\/\/\S+$/i;
const PG_SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;

function validPrefix(prefix: string): boolean {
  try {
    validateTopicPrefix(prefix);
    return true;
  } catch {
    return false;
  }
}

const port = z.number().int().min(1).max(65535);

/** PROTOCOL.md §9: 2..250 members (MAX_GROUP_MEMBERS); the committer commits within 2 s. */
export { MAX_GROUP_MEMBERS };
export const MAX_COMMIT_DELAY_MS = 2000;
export const MAX_TREE_NODES_LIMIT = 65535;

/** Nodes in the ratchet tree of `members` members without holes (2n − 1). */
export const treeNodesFor = (members: number): number => 2 * members - 1;

/** Invitation policy and limits for N-way groups (RelayClient's `groups` option). */
const groupsSchema = z
  .strictObject({
    allowInvitesFrom: z
      .array(
        z
          .string()
          .transform((s) => s.toLowerCase())
          .refine(isUserIdHex, 'must be a user id (32 hex characters)'),
        'must be a list of user ids',
      )
      .optional(),
    maxMembers: z.number().int().min(2).max(MAX_GROUP_MEMBERS).optional(),
    maxTreeNodes: z.number().int().min(3).max(MAX_TREE_NODES_LIMIT).optional(),
    commitDelayMs: z.number().int().min(1).max(MAX_COMMIT_DELAY_MS).optional(),
  })
  .superRefine((g, ctx) => {
    // A tree too small for maxMembers would refuse every Welcome to a full group.
    const members = g.maxMembers ?? MAX_GROUP_MEMBERS;
    if (g.maxTreeNodes !== undefined && g.maxTreeNodes < treeNodesFor(members)) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxTreeNodes'],
        message: `a group of groups.maxMembers (${members}) members needs ${treeNodesFor(members)} nodes`,
      });
    }
  });

const databaseSchema = z.strictObject({
  url: z.string().regex(POSTGRES_URL, 'must be a postgres:// or postgresql:// URL').optional(),
  sqlitePath: z.string().min(1).optional(),
  schema: z
    .string()
    .regex(PG_SCHEMA, 'must be a lower-case identifier (letters, digits, _), 63 characters at most')
    .optional(),
});

/** File paths (relative to the config file) read when the client is created. */
const tlsSchema = z.strictObject({
  caFile: z.string().min(1).optional(),
  certFile: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
  rejectUnauthorized: z.boolean().optional(),
});

export const configSchema = z.strictObject({
  broker: z
    .strictObject({
      url: z.string().regex(BROKER_URL, 'must be an mqtt://, mqtts://, ws:// or wss:// URL').optional(),
      username: z.string().min(1).optional(),
      password: z.string().optional(),
      tls: tlsSchema.optional(),
      clientId: z.string().min(1).max(256).optional(),
      sessionExpirySeconds: z.number().int().min(0).max(0xffff_ffff).optional(),
      /** Port of the in-process broker `start` runs when no url is set (and that clients then use). */
      embeddedPort: port.default(DEFAULT_EMBEDDED_BROKER_PORT),
    })
    .default({ embeddedPort: DEFAULT_EMBEDDED_BROKER_PORT }),
  database: databaseSchema.default({}),
  /** The CLI's own identity (send, chat): a separate store from the bot's. */
  client: z
    .strictObject({
      database: databaseSchema.default({}),
      displayName: z.string().min(1).max(64).optional(),
      /** The CLI's MQTT credentials; default broker.username / broker.password. */
      username: z.string().min(1).optional(),
      password: z.string().optional(),
    })
    .default({ database: {} }),
  bot: z
    .strictObject({
      module: z.string().min(1).optional(),
      /** The export to use when the module has several bot classes. */
      export: z.string().min(1).optional(),
      name: z.string().min(1).optional(),
      displayName: z.string().min(1).max(64).optional(),
      /** Passed to the bot class's constructor. */
      options: z.record(z.string(), z.unknown()).default({}),
    })
    .default({ options: {} }),
  powBits: z.number().int().min(0).max(MAX_MINED_POW_BITS).optional(),
  topicPrefix: z
    .string()
    .min(1)
    .refine(validPrefix, 'not a usable MQTT topic prefix')
    .default(DEFAULT_TOPIC_PREFIX),
  limits: z
    .strictObject({
      maxEnvelopeBytes: z
        .number()
        .int()
        .min(1024)
        .max(256 * 1024 * 1024)
        .optional(),
      handlerTimeoutMs: z.number().int().min(1).optional(),
    })
    .default({}),
  /** format: auto is readable on a terminal, JSON lines otherwise (cli/log.ts). */
  logging: z
    .strictObject({ level: z.enum(LOG_LEVELS).default('info'), format: z.enum(LOG_FORMATS).default('auto') })
    .default({ level: 'info', format: 'auto' }),
  /** N-way groups (PROTOCOL.md §9); allowInvitesFrom applies to the bot only. */
  groups: groupsSchema.default({}),
  /** Prometheus /metrics and /healthz; off unless port is set (0: any free port). */
  metrics: z
    .strictObject({
      port: z.number().int().min(0).max(65535).optional(),
      host: z.string().min(1).default(DEFAULT_METRICS_HOST),
    })
    .default({ host: DEFAULT_METRICS_HOST }),
});

export type ConfigInput = z.input<typeof configSchema>;
type Parsed = z.output<typeof configSchema>;

export interface DatabaseConfig {
  url?: string;
  /** Absolute path, always set (used when url is not). */
  sqlitePath: string;
  schema?: string;
}

export interface RelayConfig extends Omit<Parsed, 'database' | 'client'> {
  database: DatabaseConfig;
  client: { database: DatabaseConfig; displayName?: string; username?: string; password?: string };
  /** From RELAY_STATE_KEY only: secrets do not belong in config files. */
  stateKey?: string;
  /** The file the configuration came from, if any. */
  file?: string;
  /** Where relative paths from the file are resolved. */
  baseDir: string;
}

type EnvKind = 'string' | 'int' | 'bool' | 'list';

/** Environment overrides: variable → config key. */
export const ENV_OVERRIDES: ReadonlyArray<{ env: string; key: string; kind: EnvKind }> = [
  { env: 'RELAY_BROKER_URL', key: 'broker.url', kind: 'string' },
  { env: 'RELAY_BROKER_USERNAME', key: 'broker.username', kind: 'string' },
  { env: 'RELAY_BROKER_PASSWORD', key: 'broker.password', kind: 'string' },
  { env: 'RELAY_BROKER_CLIENT_ID', key: 'broker.clientId', kind: 'string' },
  { env: 'RELAY_BROKER_SESSION_EXPIRY', key: 'broker.sessionExpirySeconds', kind: 'int' },
  { env: 'RELAY_EMBEDDED_BROKER_PORT', key: 'broker.embeddedPort', kind: 'int' },
  { env: 'DATABASE_URL', key: 'database.url', kind: 'string' },
  { env: 'RELAY_SQLITE_PATH', key: 'database.sqlitePath', kind: 'string' },
  { env: 'RELAY_DATABASE_SCHEMA', key: 'database.schema', kind: 'string' },
  { env: 'RELAY_CLIENT_DATABASE_URL', key: 'client.database.url', kind: 'string' },
  { env: 'RELAY_CLIENT_SQLITE_PATH', key: 'client.database.sqlitePath', kind: 'string' },
  { env: 'RELAY_CLIENT_USERNAME', key: 'client.username', kind: 'string' },
  { env: 'RELAY_CLIENT_PASSWORD', key: 'client.password', kind: 'string' },
  { env: 'RELAY_BOT_MODULE', key: 'bot.module', kind: 'string' },
  { env: 'RELAY_BOT_NAME', key: 'bot.name', kind: 'string' },
  { env: 'RELAY_TOPIC_PREFIX', key: 'topicPrefix', kind: 'string' },
  { env: 'RELAY_POW_BITS', key: 'powBits', kind: 'int' },
  { env: 'RELAY_LOG_LEVEL', key: 'logging.level', kind: 'string' },
  { env: 'RELAY_LOG_FORMAT', key: 'logging.format', kind: 'string' },
  { env: 'RELAY_METRICS_PORT', key: 'metrics.port', kind: 'int' },
  { env: 'RELAY_METRICS_HOST', key: 'metrics.host', kind: 'string' },
  { env: 'RELAY_GROUPS_ALLOW_INVITES_FROM', key: 'groups.allowInvitesFrom', kind: 'list' },
];

/** How to fix each key, for error messages. */
const FIX: Record<string, string> = {
  'broker.url': 'use e.g. mqtt://127.0.0.1:1883, or remove it to use the embedded broker',
  'broker.sessionExpirySeconds': 'use a whole number of seconds, e.g. 604800',
  'broker.embeddedPort': 'use a free TCP port, e.g. 1884',
  'broker.tls': 'give file paths caFile, certFile, keyFile and a boolean rejectUnauthorized',
  'database.url': 'use e.g. postgres://user:pass@host:5432/db, or remove it to use SQLite',
  'database.schema': 'use a plain lower-case name such as relay',
  'client.database.url': 'use e.g. postgres://user:pass@host:5432/db, or remove it to use SQLite',
  powBits: `use a whole number from 0 to ${MAX_MINED_POW_BITS} (default ${DEFAULT_POW_BITS})`,
  topicPrefix: "use e.g. relay or acme/relay (no '+', '#', leading '$' or empty levels)",
  'logging.level': `use one of ${LOG_LEVELS.join(', ')}`,
  'logging.format': `use one of ${LOG_FORMATS.join(', ')}`,
  'metrics.port': 'use a free TCP port number, e.g. 9464 (0 picks any free port)',
  'metrics.host': 'use an address to listen on, e.g. 127.0.0.1 or 0.0.0.0',
  'limits.maxEnvelopeBytes': `use a whole number of bytes, at least 1024 (default ${DEFAULT_MAX_ENVELOPE_BYTES})`,
  'limits.handlerTimeoutMs': 'use a positive whole number of milliseconds',
  'bot.options': 'use a mapping of option names to values',
  'groups.allowInvitesFrom':
    'list the user ids (32 hex characters, as `relay-bot id` prints them) that may invite the bot, e.g. allowInvitesFrom: [0123456789abcdef0123456789abcdef]; [] refuses every invitation, and leaving the key out accepts anyone',
  'groups.maxMembers': `use a whole number from 2 to ${MAX_GROUP_MEMBERS} (default ${MAX_GROUP_MEMBERS})`,
  'groups.maxTreeNodes': `use a whole number from 2 × groups.maxMembers − 1 (${treeNodesFor(MAX_GROUP_MEMBERS)} for ${MAX_GROUP_MEMBERS} members) to ${MAX_TREE_NODES_LIMIT} (default 2047), or lower groups.maxMembers`,
  'groups.commitDelayMs': `use a whole number of milliseconds from 1 to ${MAX_COMMIT_DELAY_MS} (default 200)`,
  groups: 'use a mapping with allowInvitesFrom, maxMembers, maxTreeNodes and commitDelayMs',
};

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
  if (kind === 'int') {
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
  return config;
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
