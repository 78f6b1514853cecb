/**
 * The relay-bot configuration's shape: defaults, the zod schema, the environment overrides and the fix
 * shown for each key. Reading, merging and path resolution are in config.ts.
 */
import { z } from 'zod';
import {
  DEFAULT_FENCE_AFTER_MS,
  DEFAULT_MAX_ENVELOPE_BYTES,
  DEFAULT_POW_BITS,
  DEFAULT_TOPIC_PREFIX,
  MAX_GROUP_MEMBERS,
  MAX_LEASE_TTL_MS,
  MAX_MINED_POW_BITS,
  validateTopicPrefix,
} from '../framework/relay/index.js';
import { LOG_FORMATS } from './log.js';
import { isUserIdHex } from './user-id.js';
import { ATTACHMENTS_ENV, ATTACHMENTS_FIX, attachmentsSchema } from './attachments-config.js';
import { TASKS_ENV, TASKS_FIX, tasksSchema } from './tasks-config.js';

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
/** An MQTT 5 share name: no level separator or wildcard (MQTT 5 §4.8.2). */
const SHARE_GROUP = /^[^/+#\s]{1,64}$/;
/** Far more replicas than one broker and one database serve; keeps client ids short. */
export const MAX_REPLICA_SLOT = 9999;
/** The transport's keepalive when broker.keepaliveSeconds is not set. */
export const DEFAULT_KEEPALIVE_SECONDS = 30;
/** MQTT's Keep Alive is two bytes (MQTT 5 §3.1.2.10); 0, which turns it off, is refused. */
export const MAX_KEEPALIVE_SECONDS = 65535;

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
      /** How often the link is pinged; a dead link is noticed after about two (replica.fenceAfterMs). */
      keepaliveSeconds: z.number().int().min(1).max(MAX_KEEPALIVE_SECONDS).optional(),
      /**
       * This replica's slot (0, 1, …), stable across restarts: its client id is relay-<id>-<slot>.
       * `auto`: the lowest slot no live replica holds (a lease in Postgres), for `--scale` deployments.
       */
      replicaSlot: z.union([z.number().int().min(0).max(MAX_REPLICA_SLOT), z.literal('auto')]).optional(),
      /** MQTT 5 shared subscription group: the replicas of one identity split its messages. */
      shareGroup: z.string().regex(SHARE_GROUP, "must be a name without '/', '+' or '#'").optional(),
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
      stopGraceMs: z.number().int().min(0).optional(),
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
  /** Attachments (PROTOCOL.md §8): blob store, size limit, chat download directory. */
  attachments: attachmentsSchema,
  /** Replicas (broker.shareGroup): how long a replica cut off from the broker waits to fence itself. */
  replica: z
    .strictObject({ fenceAfterMs: z.number().int().min(1).max(MAX_LEASE_TTL_MS).optional() })
    .default({}),
  /** Limits and pacing of task commands (cli/tasks-config.ts). */
  tasks: tasksSchema,
});

export type ConfigInput = z.input<typeof configSchema>;
export type Parsed = z.output<typeof configSchema>;

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

/** How an environment value is read; `slot` is a whole number or the word auto. */
export type EnvKind = 'string' | 'int' | 'bool' | 'list' | 'slot';

/** Environment overrides: variable → config key. */
export const ENV_OVERRIDES: ReadonlyArray<{ env: string; key: string; kind: EnvKind }> = [
  { env: 'RELAY_BROKER_URL', key: 'broker.url', kind: 'string' },
  { env: 'RELAY_BROKER_USERNAME', key: 'broker.username', kind: 'string' },
  { env: 'RELAY_BROKER_PASSWORD', key: 'broker.password', kind: 'string' },
  { env: 'RELAY_BROKER_CLIENT_ID', key: 'broker.clientId', kind: 'string' },
  { env: 'RELAY_BROKER_SESSION_EXPIRY', key: 'broker.sessionExpirySeconds', kind: 'int' },
  { env: 'RELAY_BROKER_KEEPALIVE', key: 'broker.keepaliveSeconds', kind: 'int' },
  { env: 'RELAY_FENCE_AFTER_MS', key: 'replica.fenceAfterMs', kind: 'int' },
  { env: 'RELAY_REPLICA_SLOT', key: 'broker.replicaSlot', kind: 'slot' },
  { env: 'RELAY_SHARE_GROUP', key: 'broker.shareGroup', kind: 'string' },
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
  ...ATTACHMENTS_ENV,
  ...TASKS_ENV,
];

/** How to fix each key, for error messages. */
export const FIX: Record<string, string> = {
  'broker.url': 'use e.g. mqtt://127.0.0.1:1883, or remove it to use the embedded broker',
  'broker.sessionExpirySeconds': 'use a whole number of seconds, e.g. 604800',
  'broker.embeddedPort': 'use a free TCP port, e.g. 1884',
  'broker.keepaliveSeconds': `use a whole number of seconds from 1 to ${MAX_KEEPALIVE_SECONDS} (default ${DEFAULT_KEEPALIVE_SECONDS}); keep two of them below replica.fenceAfterMs`,
  'replica.fenceAfterMs': `use a whole number of milliseconds from 1 to ${MAX_LEASE_TTL_MS} (default ${DEFAULT_FENCE_AFTER_MS}), at least two broker.keepaliveSeconds so a short blip does not move duties`,
  replica: 'use a mapping with fenceAfterMs',
  'broker.replicaSlot': `use a whole number from 0 to ${MAX_REPLICA_SLOT}, one per replica and the same after a restart (e.g. RELAY_REPLICA_SLOT=0, 1, 2 …), or auto to take the lowest free one`,
  'broker.shareGroup':
    "use a plain name such as bots (no '/', '+', '#' or spaces), the same for every replica",
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
  'limits.stopGraceMs': 'use a whole number of milliseconds, 0 or more (default 5000)',
  'bot.options': 'use a mapping of option names to values',
  'groups.allowInvitesFrom':
    'list the user ids (32 hex characters, as `relay-bot id` prints them) that may invite the bot, e.g. allowInvitesFrom: [0123456789abcdef0123456789abcdef]; [] refuses every invitation, and leaving the key out accepts anyone',
  'groups.maxMembers': `use a whole number from 2 to ${MAX_GROUP_MEMBERS} (default ${MAX_GROUP_MEMBERS})`,
  'groups.maxTreeNodes': `use a whole number from 2 × groups.maxMembers − 1 (${treeNodesFor(MAX_GROUP_MEMBERS)} for ${MAX_GROUP_MEMBERS} members) to ${MAX_TREE_NODES_LIMIT} (default 2047), or lower groups.maxMembers`,
  'groups.commitDelayMs': `use a whole number of milliseconds from 1 to ${MAX_COMMIT_DELAY_MS} (default 200)`,
  groups: 'use a mapping with allowInvitesFrom, maxMembers, maxTreeNodes and commitDelayMs',
  ...ATTACHMENTS_FIX,
  ...TASKS_FIX,
};
