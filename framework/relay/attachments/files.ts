/**
 * Attachments as PROTOCOL.md §8 carries them: sealing a file into `attachment` content (inline up
 * to 64 KiB, else AES-256-GCM ciphertext put in a BlobStore), and opening received content into
 * the file, only after its size and digest verified. A failure is a reason to count, never an
 * exception: the content came from the network.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import {
  ATTACHMENT_KEY_LENGTH,
  ATTACHMENT_NONCE_LENGTH,
  MAX_INLINE_ATTACHMENT_BYTES,
  type AttachmentContent,
} from '../content-types.js';
import { ArgumentError, ConfigError } from '../errors.js';
import type { BlobRead, BlobStore } from './blob-store.js';
import type { FetchPolicy } from './fetch-policy.js';
import { fetchBlob } from './http-fetch.js';
import { KindCounters } from '../kind-counters.js';

/** The AES-GCM tag appended to a blob's ciphertext, in bytes. */
export const GCM_TAG_LENGTH = 16;
/** The largest file a receiver downloads unless told otherwise (25 MiB). */
export const DEFAULT_MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024;
/** How long a receiver waits for one blob download by default (ms). */
export const DEFAULT_ATTACHMENT_FETCH_TIMEOUT_MS = 30_000;

/** A file to send. */
export interface AttachmentFile {
  /** The file name shown to the receiver (no directories). */
  name: string;
  /** Its media type, e.g. `image/png`; default `application/octet-stream`. */
  mediaType?: string;
  /** The file's content. */
  bytes: Uint8Array;
}

/** A received file whose size and SHA-256 were checked against the bytes. */
export interface ReceivedFile {
  /** The name the sender gave (not a safe path: strip directories before saving). */
  readonly name: string;
  /** The media type the sender declared (`mime` on the wire). */
  readonly mediaType: string;
  /** Its length in bytes, as declared and checked. */
  readonly size: number;
  /** Lowercase hex SHA-256 of `bytes`. */
  readonly sha256: string;
  /** The file's content. */
  readonly bytes: Uint8Array;
}

/** Why a received attachment was dropped; each has its own counter. */
export const ATTACHMENT_DROP_REASONS = [
  /** It declares more bytes than the receiver takes, or the download ran past the declared size. */
  'attachment_oversize',
  /** The bytes are fewer (or, inline, other) than the declared size. */
  'attachment_size',
  /** The bytes do not hash to the declared sha256. */
  'attachment_digest',
  /** The blob did not decrypt under the message's key and nonce (AES-GCM tag). */
  'attachment_decrypt',
  /** The blob store has no such blob (404, no file). */
  'attachment_missing',
  /** The download failed: network, timeout, a server error, a URL scheme we do not fetch. */
  'attachment_fetch',
  /**
   * The URL's address is not one downloads may connect to (loopback, private, link-local…; the
   * fetch policy, issue #14): no request was sent.
   */
  'attachment_refused',
] as const;

/** One of ATTACHMENT_DROP_REASONS. */
export type AttachmentDropReason = (typeof ATTACHMENT_DROP_REASONS)[number];

/** Per-reason counts of dropped attachments, all starting at 0. */
export class AttachmentDropCounters extends KindCounters<AttachmentDropReason> {
  constructor() {
    super(ATTACHMENT_DROP_REASONS);
  }
}

/** sealAttachment()'s options. */
export interface SealAttachmentOptions {
  /** Where files over 64 KiB go; without it they are refused (ConfigError). */
  store?: BlobStore | undefined;
  /** How the ConfigError names the setting to fix (default `attachments.store`). */
  storeSetting?: string;
}

/**
 * The `attachment` content for `file`: inline when it has at most 64 KiB, else encrypted with a
 * fresh AES-256-GCM key and nonce, put in `store`, and sent as its URL with key and nonce.
 */
export async function sealAttachment(
  file: AttachmentFile,
  options: SealAttachmentOptions = {},
): Promise<AttachmentContent> {
  const { name, bytes } = file ?? ({} as AttachmentFile);
  if (typeof name !== 'string' || name.trim() === '' || /[/\\]/.test(name)) {
    throw new ArgumentError(
      'an attachment needs a file name without directories, e.g. { name: "report.pdf" }',
    );
  }
  if (!(bytes instanceof Uint8Array))
    throw new ArgumentError('an attachment needs its bytes as a Uint8Array');
  const mime = file.mediaType ?? 'application/octet-stream';
  if (typeof mime !== 'string' || mime === '') throw new ArgumentError('an attachment mediaType is a string');
  const head = {
    type: 'attachment' as const,
    name,
    mime,
    size: bytes.length,
    sha256: sha256Hex(bytes),
    content: '',
  };
  if (bytes.length <= MAX_INLINE_ATTACHMENT_BYTES)
    return { ...head, source: { kind: 'inline', data: bytes } };
  const store = options.store;
  if (!store) {
    throw new ConfigError(
      `${name} has ${bytes.length} bytes: files over ${MAX_INLINE_ATTACHMENT_BYTES} bytes go to a blob store. Fix: configure ${options.storeSetting ?? 'attachments.store'} (a local directory or S3)`,
    );
  }
  const key = randomBytes(ATTACHMENT_KEY_LENGTH);
  const nonce = randomBytes(ATTACHMENT_NONCE_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  const ciphertext = Buffer.concat([cipher.update(bytes), cipher.final(), cipher.getAuthTag()]);
  const url = await store.put(ciphertext);
  return { ...head, source: { kind: 'url', url, key, nonce } };
}

/** openAttachment()'s options. */
export interface OpenAttachmentOptions {
  /** Stores whose own URLs are read through them (their credentials, their directory). */
  stores?: readonly BlobStore[];
  /** The largest file taken (default 25 MiB); a larger declared size is dropped before any download. */
  maxBytes?: number;
  /** One download's time limit (default 30 s). */
  timeoutMs?: number;
  /** Where other URLs may be downloaded from (default: public addresses only). */
  fetchPolicy?: FetchPolicy;
  /** Other URLs: http(s) GET with a cap (default fetchBlob under fetchPolicy; tests may pass another). */
  fetchBlob?: (url: string, maxBytes: number, signal: AbortSignal) => Promise<BlobRead>;
}

/** What opening an attachment gave: the verified file, or the reason it was dropped. */
export type OpenedAttachment =
  | { readonly ok: true; readonly file: ReceivedFile }
  | { readonly ok: false; readonly reason: AttachmentDropReason };

/**
 * The file of received `attachment` content, once its size and digest verified: inline bytes as
 * they are; a blob downloaded with a cap of the declared size plus the GCM tag, decrypted, checked.
 */
export async function openAttachment(
  c: AttachmentContent,
  options: OpenAttachmentOptions = {},
): Promise<OpenedAttachment> {
  const max = options.maxBytes ?? DEFAULT_MAX_ATTACHMENT_BYTES;
  if (c.size > max) return { ok: false, reason: 'attachment_oversize' };
  let bytes: Uint8Array;
  if (c.source.kind === 'inline') {
    bytes = c.source.data;
  } else {
    const read = await download(c.source.url, c.size + GCM_TAG_LENGTH, options);
    if (!read.ok) return { ok: false, reason: `attachment_${read.reason}` };
    if (read.bytes.length !== c.size + GCM_TAG_LENGTH) return { ok: false, reason: 'attachment_size' };
    const plain = decrypt(read.bytes, c.source.key, c.source.nonce);
    if (!plain) return { ok: false, reason: 'attachment_decrypt' };
    bytes = plain;
  }
  if (bytes.length !== c.size) return { ok: false, reason: 'attachment_size' };
  const sha256 = sha256Hex(bytes);
  if (sha256 !== c.sha256) return { ok: false, reason: 'attachment_digest' };
  return { ok: true, file: { name: c.name, mediaType: c.mime, size: c.size, sha256, bytes } };
}

async function download(url: string, cap: number, options: OpenAttachmentOptions): Promise<BlobRead> {
  const signal = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_ATTACHMENT_FETCH_TIMEOUT_MS);
  const own = options.stores?.find((s) => s.owns(url));
  try {
    if (own) return await own.get(url, cap, signal);
    if (options.fetchBlob) return await options.fetchBlob(url, cap, signal);
    return await fetchBlob(url, cap, signal, options.fetchPolicy ? { policy: options.fetchPolicy } : {});
  } catch {
    return { ok: false, reason: 'fetch' };
  }
}

function decrypt(blob: Uint8Array, key: Uint8Array, nonce: Uint8Array): Uint8Array | undefined {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    decipher.setAuthTag(blob.subarray(blob.length - GCM_TAG_LENGTH));
    return Buffer.concat([decipher.update(blob.subarray(0, blob.length - GCM_TAG_LENGTH)), decipher.final()]);
  } catch {
    return undefined;
  }
}

/** Lowercase hex SHA-256. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
