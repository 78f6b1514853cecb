/**
 * Where encrypted attachment blobs live (PROTOCOL.md §8: a file over 64 KiB travels as an
 * AES-256-GCM ciphertext at a URL). A store only ever sees ciphertext; the key rides in the MLS
 * message. Implementations: LocalDirectoryBlobStore (a directory, optionally served over HTTP) and
 * S3BlobStore (any S3-compatible service).
 */

/** What reading a blob gave: its bytes, or why there are none. */
export type BlobRead =
  | { readonly ok: true; readonly bytes: Uint8Array }
  /**
   * `missing`: no such blob (404, no file); `oversize`: longer than the cap the reader gave;
   * `refused`: the address is not one the fetch policy lets a download connect to (request
   * forgery, issue #14); `fetch`: anything else (network, timeout, a scheme we do not fetch, a
   * server error).
   */
  | { readonly ok: false; readonly reason: 'missing' | 'oversize' | 'refused' | 'fetch' };

/** A place to put attachment ciphertext and read it back by the URL it returned. */
export interface BlobStore {
  /** Stores `bytes` under a fresh unguessable name; resolves with the URL receivers fetch. */
  put(bytes: Uint8Array): Promise<string>;
  /** Whether `url` names a blob of this store, so get() reads it with the store's own access. */
  owns(url: string): boolean;
  /**
   * Reads the blob at `url` (one this store owns), reading at most `maxBytes + 1` bytes: a longer blob
   * is `oversize`, never buffered whole.
   */
  get(url: string, maxBytes: number, signal?: AbortSignal): Promise<BlobRead>;
  /** Removes the blob at `url`; a missing one is not an error. */
  delete(url: string): Promise<void>;
  /**
   * The http(s) origins (`scheme://host:port`) this store's URLs live at. A receiver downloads
   * from them wherever they resolve (a store on 127.0.0.1 in development), as the operator
   * configured them; other URLs must pass the fetch policy.
   */
  origins?(): readonly string[];
}

/** A random blob name: 128 bits of hex, so URLs cannot be guessed. */
export function blobName(random: (n: number) => Uint8Array): string {
  return Buffer.from(random(16)).toString('hex');
}

/** Blob names this code writes: anything else in a URL is not ours (no path tricks). */
export const BLOB_NAME = /^[0-9a-f]{32}$/;
