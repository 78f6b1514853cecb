/**
 * The `attachments` config section: the blob store for files over 64 KiB (a local directory or an
 * S3-compatible bucket), the largest file taken in, where downloads may connect beyond public
 * addresses (`fetch`), and where `relay-bot chat` saves received files.
 * Relative paths are resolved against the config file's directory (or the cwd without a file).
 */
import path from 'node:path';
import { z } from 'zod';
import {
  ALLOW_HOSTS_FIX,
  LocalDirectoryBlobStore,
  parseAllowHost,
  MAX_PRESIGNED_URL_SECONDS,
  S3BlobStore,
  type AttachmentFetchOptions,
  type BlobStore,
} from '../framework/relay/index.js';

/** Where `relay-bot chat` saves received attachments unless attachments.downloadDir says otherwise. */
export const DEFAULT_DOWNLOAD_DIR = './relay-downloads';

const httpUrl = z.string().regex(/^https?:\/\/\S+$/i, 'must be an http:// or https:// URL');

const localStore = z.strictObject({
  kind: z.literal('local'),
  dir: z.string().min(1),
  /** The http(s) URL the directory is served at; without it only this machine can read the blobs. */
  publicUrl: httpUrl.optional(),
});

const s3Store = z.strictObject({
  kind: z.literal('s3'),
  endpoint: httpUrl,
  bucket: z.string().min(1),
  region: z.string().min(1).optional(),
  /** Better from RELAY_S3_ACCESS_KEY_ID / RELAY_S3_SECRET_ACCESS_KEY than from the file. */
  accessKeyId: z.string().min(1),
  secretAccessKey: z.string().min(1),
  prefix: z.string().optional(),
  publicUrl: httpUrl.optional(),
  urlTtlSeconds: z.number().int().min(1).max(MAX_PRESIGNED_URL_SECONDS).optional(),
});

/** Where downloads may connect beyond public addresses (request forgery, issue #14). */
const fetchSection = z.strictObject({
  allowHosts: z
    .array(
      z.string().refine((s) => parseAllowHost(s) !== undefined, 'not a host name, IP address or CIDR block'),
    )
    .optional(),
  allowPrivateNetworks: z.boolean().optional(),
});

/** The `attachments` key of the config. */
export const attachmentsSchema = z
  .strictObject({
    store: z.discriminatedUnion('kind', [localStore, s3Store]).optional(),
    maxBytes: z
      .number()
      .int()
      .min(1)
      .max(1024 * 1024 * 1024)
      .optional(),
    fetchTimeoutMs: z.number().int().min(1).optional(),
    fetch: fetchSection.optional(),
    /** How long uploaded blobs are kept before the bot deletes them (default 30 days). */
    blobTtlSeconds: z.number().int().min(1).optional(),
    downloadDir: z.string().min(1).default(DEFAULT_DOWNLOAD_DIR),
  })
  .default({ downloadDir: DEFAULT_DOWNLOAD_DIR });

/** The parsed `attachments` section. */
export type AttachmentsConfig = z.output<typeof attachmentsSchema>;

/** How to fix each attachments key, for error messages (merged into config-schema.ts FIX). */
export const ATTACHMENTS_FIX: Record<string, string> = {
  'attachments.store':
    'use { kind: local, dir: ./blobs } (publicUrl if the directory is served over HTTP) or { kind: s3, endpoint, bucket, accessKeyId, secretAccessKey }',
  'attachments.store.publicUrl':
    'use the http(s) URL the blobs are readable at, e.g. https://files.example.com/relay',
  'attachments.store.endpoint':
    'use the S3 service URL, e.g. https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:9000',
  'attachments.store.urlTtlSeconds': `use a whole number of seconds from 1 to ${MAX_PRESIGNED_URL_SECONDS} (7 days)`,
  'attachments.maxBytes': 'use a whole number of bytes, e.g. 26214400 (25 MiB, the default)',
  'attachments.fetchTimeoutMs': 'use a positive whole number of milliseconds (default 30000)',
  'attachments.blobTtlSeconds':
    'use a whole number of seconds ≥ 1, e.g. 2592000 (30 days, the default); receivers download within it',
  'attachments.fetch':
    'use { allowHosts: [files.internal, 10.0.0.0/8], allowPrivateNetworks: true } (both optional)',
  'attachments.fetch.allowHosts': ALLOW_HOSTS_FIX,
  'attachments.fetch.allowPrivateNetworks': 'use true or false (default false: public addresses only)',
};

/** Environment overrides of the section (secrets belong in the environment). */
export const ATTACHMENTS_ENV = [
  { env: 'RELAY_S3_ACCESS_KEY_ID', key: 'attachments.store.accessKeyId', kind: 'string' },
  { env: 'RELAY_S3_SECRET_ACCESS_KEY', key: 'attachments.store.secretAccessKey', kind: 'string' },
  { env: 'RELAY_DOWNLOAD_DIR', key: 'attachments.downloadDir', kind: 'string' },
] as const;

/** The configured blob store, or undefined (files over 64 KiB then cannot be sent). */
export function blobStoreOf(config: AttachmentsConfig, baseDir: string): BlobStore | undefined {
  const s = config.store;
  if (!s) return undefined;
  if (s.kind === 'local') {
    return new LocalDirectoryBlobStore({
      dir: path.resolve(baseDir, s.dir),
      ...(s.publicUrl !== undefined ? { publicUrl: s.publicUrl } : {}),
    });
  }
  const { kind: _kind, ...options } = s;
  return new S3BlobStore(options);
}

/** BotRuntimeOptions.attachments from the config. */
export function botAttachmentOptions(
  config: AttachmentsConfig,
  baseDir: string,
): {
  store?: BlobStore;
  maxBytes?: number;
  fetchTimeoutMs?: number;
  fetch?: AttachmentFetchOptions;
  blobTtlSeconds?: number;
} {
  const store = blobStoreOf(config, baseDir);
  return {
    ...(store ? { store } : {}),
    ...(config.fetch ? { fetch: fetchOptionsOf(config) } : {}),
    ...(config.blobTtlSeconds !== undefined ? { blobTtlSeconds: config.blobTtlSeconds } : {}),
    ...(config.maxBytes !== undefined ? { maxBytes: config.maxBytes } : {}),
    ...(config.fetchTimeoutMs !== undefined ? { fetchTimeoutMs: config.fetchTimeoutMs } : {}),
  };
}

/** attachments.fetch as BotAttachmentOptions.fetch / ChatFilesOptions.fetch. */
export function fetchOptionsOf(config: AttachmentsConfig): AttachmentFetchOptions {
  const f = config.fetch;
  return {
    ...(f?.allowHosts ? { allowHosts: f.allowHosts } : {}),
    ...(f?.allowPrivateNetworks !== undefined ? { allowPrivateNetworks: f.allowPrivateNetworks } : {}),
  };
}
