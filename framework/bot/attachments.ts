/**
 * Attachments for bots: what ctx.attach() sends and what ctx.attachments holds. A received
 * `attachment` is opened (downloaded, decrypted, size and digest checked) before any middleware or
 * handler runs; one that does not verify drops the message for this bot (counted in `drops`, logged
 * at debug level): §8 says a receiver checks size and digest "before use", so a handler never sees a
 * file, or a message about a file, that failed. The message still counts as processed. Downloads
 * go only where the fetch policy allows (public addresses unless configured): the URL is a peer's.
 */
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import type { Logger } from 'pino';
import {
  AttachmentDropCounters,
  FetchPolicy,
  openAttachment,
  sealAttachment,
  type AttachmentFetchOptions,
  type AttachmentFile,
  type BlobStore,
  type OpenAttachmentOptions,
  type ReceivedFile,
} from '../relay/attachments/index.js';
import type { ReceivedMessage } from '../relay/client.js';
import type { AttachmentContent } from '../relay/content-types.js';
import { ArgumentError, ConfigError } from '../relay/errors.js';
import { BlobLifetime, DEFAULT_BLOB_TTL_SECONDS, type BlobLedgerStore } from './blob-lifetime.js';

/** BotRuntimeOptions.attachments: where large files go, and what the bot takes in. */
export interface BotAttachmentOptions {
  /**
   * Where files over 64 KiB are put (encrypted); without it ctx.attach() of such a file is a
   * ConfigError. Its own URLs are also read through it (its credentials, its directory).
   */
  store?: BlobStore;
  /** The largest received file (default 25 MiB); larger ones are dropped before any download. */
  maxBytes?: number;
  /** One download's time limit in ms (default 30 s); the conversation waits for it. */
  fetchTimeoutMs?: number;
  /**
   * Where downloads of URLs no store owns may connect: public addresses only unless opened here
   * (the store's own origins are always allowed). See AttachmentFetchOptions.
   */
  fetch?: AttachmentFetchOptions;
  /** Downloads of URLs no store owns (default: http(s) GET with a size cap under `fetch`). */
  fetchBlob?: OpenAttachmentOptions['fetchBlob'];
  /**
   * How long a blob this bot uploaded is kept, in seconds (default 30 days); then the runtime's
   * sweep deletes it from `store`. Needs the runtime attached with a store (blob-lifetime.ts).
   */
  blobTtlSeconds?: number;
  /** How often expired blobs are looked for, in ms (default hourly). */
  blobSweepMs?: number;
}

/** What the runtime gives startLifetime(): where rows go, the clock, the sweeping duty. */
export interface LifetimeWiring {
  bot: string;
  /** The runtime's store when it can commit data on its own; without it uploads are not recorded. */
  ledger: BlobLedgerStore | undefined;
  now: () => number;
  log: Logger;
  owns: () => boolean;
}

/** What ctx.attach() takes: a file in memory, or the path of one to read. */
export type AttachInput = AttachmentFile | string;

/** Common media types by extension, for ctx.attach(path); anything else is application/octet-stream. */
const MEDIA_TYPES: Readonly<Record<string, string>> = {
  '.txt': 'text/plain',
  '.md': 'text/markdown',
  '.csv': 'text/csv',
  '.json': 'application/json',
  '.pdf': 'application/pdf',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.zip': 'application/zip',
};

/** The media type of a file name by its extension. */
export function mediaTypeOf(name: string): string {
  return MEDIA_TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream';
}

/** A runtime's attachments: sealing for ctx.attach(), opening for ctx.attachments, drop counters. */
export class BotAttachments {
  /** Received attachments dropped, by reason (a wrong digest, a missing blob…). */
  readonly drops = new AttachmentDropCounters();

  private readonly fetchPolicy: FetchPolicy;
  /** Set while the runtime is attached with a store: uploads are recorded for deletion. */
  private lifetime: BlobLifetime | undefined;

  constructor(private readonly options: BotAttachmentOptions = {}) {
    const ttl = options.blobTtlSeconds;
    if (ttl !== undefined && (!Number.isSafeInteger(ttl) || ttl < 1)) {
      throw new ConfigError(
        `attachments.blobTtlSeconds is a whole number of seconds ≥ 1 (default ${DEFAULT_BLOB_TTL_SECONDS}, 30 days), got ${ttl}`,
      );
    }
    // Built here so a bad allowHosts entry fails at start-up, not at the first attachment.
    this.fetchPolicy = new FetchPolicy({
      ...options.fetch,
      origins: options.store?.origins?.() ?? [],
      setting: 'attachments.fetch (BotRuntimeOptions.attachments.fetch)',
    });
  }

  /**
   * The verified files of `message`: [] when it carries none, undefined when its attachment failed
   * a check and the message is dropped for the bot.
   */
  async receive(message: ReceivedMessage, log: Logger): Promise<readonly ReceivedFile[] | undefined> {
    const c = message.content;
    if (c.type !== 'attachment' || !('source' in c)) return [];
    const o = this.options;
    const opened = await openAttachment(c, {
      ...(o.store ? { stores: [o.store] } : {}),
      ...(o.maxBytes !== undefined ? { maxBytes: o.maxBytes } : {}),
      ...(o.fetchTimeoutMs !== undefined ? { timeoutMs: o.fetchTimeoutMs } : {}),
      ...(o.fetchBlob ? { fetchBlob: o.fetchBlob } : {}),
      fetchPolicy: this.fetchPolicy,
    });
    if (opened.ok) return [opened.file];
    this.drops.increment(opened.reason);
    // No name, URL or key in the log: ids and the reason only.
    log.debug({ reason: opened.reason, size: c.size }, 'attachment dropped');
    return undefined;
  }

  /**
   * Starts recording uploads and sweeping expired blobs (runtime attach); `undefined` stops
   * recording (detach). Nothing starts without a blob store or a ledger.
   */
  startLifetime(wiring: LifetimeWiring | undefined): BlobLifetime | undefined {
    this.lifetime = undefined;
    const store = this.options.store;
    if (!wiring?.ledger || !store) return undefined;
    const lifetime = new BlobLifetime({
      bot: wiring.bot,
      ledger: wiring.ledger,
      blobs: store,
      ttlSeconds: this.options.blobTtlSeconds ?? DEFAULT_BLOB_TTL_SECONDS,
      now: wiring.now,
      log: wiring.log,
      owns: wiring.owns,
      ...(this.options.blobSweepMs !== undefined ? { sweepMs: this.options.blobSweepMs } : {}),
    });
    this.lifetime = lifetime;
    lifetime.start();
    return lifetime;
  }

  /**
   * The `attachment` content for ctx.attach(): inline, or encrypted into the store; an uploaded
   * blob is recorded (blob-lifetime.ts) before its URL is returned.
   */
  async seal(input: AttachInput): Promise<AttachmentContent> {
    const file = typeof input === 'string' ? await readPath(input) : input;
    if (typeof file !== 'object' || file === null) {
      throw new ArgumentError('attach() takes { name, mediaType?, bytes } or the path of a file');
    }
    const c = await sealAttachment(
      { ...file, mediaType: file.mediaType ?? mediaTypeOf(file.name) },
      { store: this.options.store, storeSetting: 'attachments.store (BotRuntimeOptions.attachments.store)' },
    );
    const lifetime = this.lifetime;
    if (c.source.kind === 'url' && lifetime) {
      try {
        await lifetime.record(c.source.url);
      } catch (e) {
        // Unrecorded, it would never be deleted: take it back, and fail the attach().
        await this.options.store?.delete(c.source.url).catch(() => undefined);
        throw e;
      }
    }
    return c;
  }
}

async function readPath(path: string): Promise<AttachmentFile> {
  if (path === '') throw new ArgumentError('attach(path) needs the path of a file');
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new ArgumentError(`attach(): cannot read ${path}: ${(e as Error).message}`);
  }
  const name = basename(path);
  return { name, mediaType: mediaTypeOf(name), bytes };
}
