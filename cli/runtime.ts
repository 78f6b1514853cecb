/**
 * What the commands share: the stderr logger, opening the bot's or the CLI's store, creating a
 * RelayClient from the configuration, and loading the bot module.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import type { DataSource } from 'typeorm';
import { readBotMetadata, type BotClass } from '../index.js';
import { RelayClient, type RelayClientOptions } from '../framework/relay/index.js';
import { createRelayDataSource, DatabaseInUseError, TypeOrmRelayStore } from '../framework/store/index.js';
import { brokerUrl, type DatabaseConfig, type RelayConfig } from './config.js';
import { CommandFailed, UsageError } from './errors.js';
import { createLogger } from './log.js';
import { isUserIdHex } from './user-id.js';

/** The bundled echo bot, relative to this file in cli/ (source) and dist/cli/ (build). */
export const DEFAULT_BOT_MODULE = new URL('../bots/echo/index.js', import.meta.url);

export type Role = 'bot' | 'client';

/** Logs go to stderr (readable on a terminal, JSON lines otherwise: cli/log.ts). */
export function makeLogger(config: RelayConfig, level?: string): Logger {
  return createLogger(level ?? config.logging.level, config.logging.format);
}

export function databaseOf(config: RelayConfig, role: Role): DatabaseConfig {
  return role === 'bot' ? config.database : config.client.database;
}

export function describeDatabase(db: DatabaseConfig): string {
  if (db.url === undefined) return `SQLite ${db.sqlitePath}`;
  const u = new URL(db.url);
  // Never print the password.
  return `Postgres ${u.hostname}:${u.port || 5432}${u.pathname}${db.schema ? ` schema ${db.schema}` : ''}`;
}

export interface OpenedStore {
  store: TypeOrmRelayStore;
  dataSource: DataSource;
}

/**
 * `inspect`: the command only reads what a running bot may hold (id, doctor), so the SQLite
 * one-process lock, which refuses a second bot, does not apply.
 */
export async function openDataSource(
  db: DatabaseConfig,
  migrate = true,
  { inspect = false }: { inspect?: boolean } = {},
): Promise<DataSource> {
  try {
    return await createRelayDataSource({
      ...(db.url !== undefined ? { url: db.url } : { sqlitePath: db.sqlitePath }),
      ...(db.schema !== undefined ? { schema: db.schema } : {}),
      migrate,
      ...(inspect ? { sqliteProcessLock: false } : {}),
    });
  } catch (e) {
    // Its message names the fix already (stop the other process, or use Postgres).
    if (e instanceof DatabaseInUseError) throw new CommandFailed(e.message);
    throw new CommandFailed(
      `${(e as Error).message} (${describeDatabase(db)}). Fix: check database.url / DATABASE_URL and that the database is running`,
    );
  }
}

export async function openStore(
  config: RelayConfig,
  role: Role,
  log: Logger,
  opts: { migrate?: boolean; inspect?: boolean } = {},
): Promise<OpenedStore> {
  const db = databaseOf(config, role);
  const dataSource = await openDataSource(db, opts.migrate ?? true, { inspect: opts.inspect ?? false });
  const store = new TypeOrmRelayStore(dataSource, {
    ...(config.stateKey !== undefined ? { stateKey: config.stateKey } : {}),
  });
  if (!store.encryptedAtRest) {
    log.warn(
      { database: describeDatabase(db) },
      'RELAY_STATE_KEY is not set: private keys and MLS state are stored unencrypted. Set RELAY_STATE_KEY (64 hex characters, base64 of 32 bytes, or a passphrase) to encrypt them at rest',
    );
  }
  return { store, dataSource };
}

export async function createClient(
  config: RelayConfig,
  role: Role,
  store: TypeOrmRelayStore,
  log: Logger,
  extra: Partial<RelayClientOptions> = {},
): Promise<RelayClient> {
  const b = config.broker;
  const displayName = role === 'bot' ? config.bot.displayName : config.client.displayName;
  const username = role === 'bot' ? b.username : (config.client.username ?? b.username);
  const password = role === 'bot' ? b.password : (config.client.password ?? b.password);
  try {
    return await RelayClient.create({
      store,
      broker: {
        url: brokerUrl(config),
        ...(username !== undefined ? { username } : {}),
        ...(password !== undefined ? { password } : {}),
        // broker.clientId names the bot's connection; the CLI's derives from its own user id.
        ...(role === 'bot' && b.clientId !== undefined ? { clientId: b.clientId } : {}),
        // Replicas are the bot's: the CLI (send, chat) is one process of its own identity.
        // `auto` is resolved by start (cli/replica.ts) before the client is made.
        ...(role === 'bot' && typeof b.replicaSlot === 'number' ? { replicaSlot: b.replicaSlot } : {}),
        ...(role === 'bot' && b.shareGroup !== undefined ? { shareGroup: b.shareGroup } : {}),
        ...(b.sessionExpirySeconds !== undefined ? { sessionExpirySeconds: b.sessionExpirySeconds } : {}),
        ...(b.keepaliveSeconds !== undefined ? { keepaliveSeconds: b.keepaliveSeconds } : {}),
        ...(b.tls !== undefined ? { tls: readTls(b.tls) } : {}),
      },
      topicPrefix: config.topicPrefix,
      ...(config.powBits !== undefined ? { powBits: config.powBits } : {}),
      ...(displayName !== undefined ? { displayName } : {}),
      ...(config.limits.maxEnvelopeBytes !== undefined
        ? { maxEnvelopeBytes: config.limits.maxEnvelopeBytes }
        : {}),
      groups: groupOptions(config, role),
      logger: log,
      ...extra,
    });
  } catch (e) {
    throw new CommandFailed(`${(e as Error).message}`);
  }
}

/**
 * RelayClient's `groups` option from the `groups:` section. allowInvitesFrom is the bot's policy:
 * the CLI's own identity (chat) accepts invitations from anyone, within the Welcome quotas.
 */
export function groupOptions(config: RelayConfig, role: Role): NonNullable<RelayClientOptions['groups']> {
  const g = config.groups;
  return {
    ...(role === 'bot' && g.allowInvitesFrom !== undefined ? { allowInvitesFrom: g.allowInvitesFrom } : {}),
    ...(g.maxMembers !== undefined ? { maxMembers: g.maxMembers } : {}),
    ...(g.maxTreeNodes !== undefined ? { maxTreeNodes: g.maxTreeNodes } : {}),
    ...(g.commitDelayMs !== undefined ? { commitDelayMs: g.commitDelayMs } : {}),
  };
}

/** A user id argument, or exit 2. */
export function parseUserId(value: unknown, what = 'user id'): string {
  const s = String(value ?? '')
    .trim()
    .toLowerCase();
  if (!isUserIdHex(s)) {
    throw new UsageError(
      `${what} ${JSON.stringify(String(value ?? ''))} is not a user id. Fix: give the 32 hex characters that \`relay-bot id\` prints (\`relay-bot id --client\` for a person's CLI)`,
    );
  }
  return s;
}

// ---------------------------------------------------------------- bot module

function isBotClass(v: unknown): v is BotClass {
  if (typeof v !== 'function') return false;
  const meta = readBotMetadata(v as BotClass);
  return meta.bot !== undefined || meta.commands.length > 0 || meta.messages.length > 0;
}

function moduleUrl(config: RelayConfig): URL {
  const spec = config.bot.module;
  if (spec === undefined) return DEFAULT_BOT_MODULE;
  if (path.isAbsolute(spec)) return pathToFileURL(spec);
  if (spec.startsWith('file:')) return new URL(spec);
  // A package name: resolved from the project (the config file's directory), not from the CLI.
  try {
    const require = createRequire(path.join(config.baseDir, 'noop.js'));
    return pathToFileURL(require.resolve(spec));
  } catch {
    throw new UsageError(
      `bot.module ${JSON.stringify(spec)} cannot be found from ${config.baseDir}. Fix: give a path (./src/bot.js) or install the package`,
    );
  }
}

/**
 * The bot instances the module provides: `bot.export` if set, else its default export, else its one
 * exported @Bot class. Classes are constructed with `bot.options`.
 */
export async function loadBotInstances(
  config: RelayConfig,
): Promise<{ instances: object[]; source: string }> {
  const url = moduleUrl(config);
  const source = url.protocol === 'file:' ? url.pathname : url.href;
  if (url.protocol === 'file:' && config.bot.module !== undefined) {
    const p = decodeURIComponent(url.pathname);
    const alt = p.replace(/\.js$/, '.ts');
    if (!existsSync(p) && !existsSync(alt)) {
      throw new UsageError(
        `bot.module ${JSON.stringify(config.bot.module)}: ${p} does not exist. Fix: set bot.module (or RELAY_BOT_MODULE) to your bot's file, relative to the config file`,
      );
    }
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url.href)) as Record<string, unknown>;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (config.bot.module === undefined && err.code === 'ERR_MODULE_NOT_FOUND') {
      throw new UsageError(
        `the bundled echo bot (${source}) is missing from this installation. Fix: set bot.module to your bot's file`,
      );
    }
    throw new CommandFailed(`cannot load the bot module ${source}: ${err.message}`);
  }
  let chosen: unknown;
  let label: string;
  if (config.bot.export !== undefined) {
    label = config.bot.export;
    chosen = mod[config.bot.export];
    if (chosen === undefined) {
      throw new UsageError(
        `bot.export ${JSON.stringify(config.bot.export)}: ${source} has no such export (it has ${Object.keys(mod).join(', ') || 'none'}). Fix: name one of its exports`,
      );
    }
  } else if (mod.default !== undefined) {
    label = 'default';
    chosen = mod.default;
  } else {
    const classes = Object.entries(mod).filter(([, v]) => isBotClass(v));
    if (classes.length !== 1) {
      throw new UsageError(
        classes.length === 0
          ? `${source} exports no @Bot class. Fix: export a class decorated with @Bot, or set bot.module to the right file`
          : `${source} exports several bot classes (${classes.map(([k]) => k).join(', ')}). Fix: set bot.export to the one to run`,
      );
    }
    [label, chosen] = classes[0]!;
  }
  const list = Array.isArray(chosen) ? chosen : [chosen];
  const instances = list.map((item: unknown) => {
    if (typeof item === 'function') {
      try {
        return new (item as new (options: unknown) => object)(config.bot.options);
      } catch (e) {
        throw new CommandFailed(`constructing ${label} from ${source} failed: ${(e as Error).message}`);
      }
    }
    if (typeof item === 'object' && item !== null) return item;
    throw new UsageError(
      `${source} export ${label} is neither a bot class nor an instance. Fix: export a class decorated with @Bot`,
    );
  });
  return { instances, source };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Reads the configured PEM files; a file that cannot be read is a configuration error. */
export function readTls(
  tls: NonNullable<RelayConfig['broker']['tls']>,
): NonNullable<RelayClientOptions['broker']['tls']> {
  const read = (key: string, file: string | undefined): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (e) {
      throw new UsageError(
        `config key broker.tls.${key}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'}). Fix: give the path of a readable PEM file`,
      );
    }
  };
  const ca = read('caFile', tls.caFile);
  const cert = read('certFile', tls.certFile);
  const key = read('keyFile', tls.keyFile);
  return {
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(tls.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
  };
}
