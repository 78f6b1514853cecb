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
import { ArgumentError } from '../relay/errors.js';

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

  constructor(private readonly options: BotAttachmentOptions = {}) {
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

  /** The `attachment` content for ctx.attach(): inline, or encrypted into the store. */
  async seal(input: AttachInput): Promise<AttachmentContent> {
    const file = typeof input === 'string' ? await readPath(input) : input;
    if (typeof file !== 'object' || file === null) {
      throw new ArgumentError('attach() takes { name, mediaType?, bytes } or the path of a file');
    }
    return sealAttachment(
      { ...file, mediaType: file.mediaType ?? mediaTypeOf(file.name) },
      { store: this.options.store, storeSetting: 'attachments.store (BotRuntimeOptions.attachments.store)' },
    );
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
