/**
 * A BlobStore in a local directory. Each blob is one file named by 128 random bits. URLs are
 * `<publicUrl>/<name>` when the directory is served over HTTP(S) (by nginx, a CDN…), so receivers on
 * other machines can fetch them; without publicUrl they are `file://` URLs, which only a process
 * with this same store configured reads (tests, one machine): receivers never fetch file: URLs.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../errors.js';
import { BLOB_NAME, blobName, type BlobRead, type BlobStore } from './blob-store.js';

/** LocalDirectoryBlobStore's options. */
export interface LocalDirectoryBlobStoreOptions {
  /** The directory blobs are written to (created when missing). */
  dir: string;
  /** The http(s) URL the directory is served at; default: file:// URLs (one machine only). */
  publicUrl?: string;
}

/** Blobs as files in one directory; see the module comment for the URLs it gives. */
export class LocalDirectoryBlobStore implements BlobStore {
  /** The absolute directory the blobs are in. */
  readonly dir: string;
  private readonly base: string;

  constructor(options: LocalDirectoryBlobStoreOptions) {
    if (typeof options?.dir !== 'string' || options.dir === '') {
      throw new ConfigError('LocalDirectoryBlobStore needs { dir }: the directory to keep blobs in');
    }
    this.dir = resolve(options.dir);
    const pub = options.publicUrl;
    if (pub !== undefined && !/^https?:\/\//.test(pub)) {
      throw new ConfigError(`attachments publicUrl must be an http(s) URL, got ${JSON.stringify(pub)}`);
    }
    this.base = (pub ?? pathToFileURL(this.dir).href).replace(/\/+$/, '') + '/';
  }

  /** BlobStore.put: writes the blob under a fresh random name, returns its URL. */
  async put(bytes: Uint8Array): Promise<string> {
    await mkdir(this.dir, { recursive: true });
    const name = blobName((n) => randomBytes(n));
    // 'wx': a name collision (2^-128) fails instead of overwriting someone's blob.
    await writeFile(join(this.dir, name), bytes, { flag: 'wx' });
    return this.base + name;
  }

  /** BlobStore.owns: one of this store's URLs. */
  owns(url: string): boolean {
    return this.nameOf(url) !== undefined;
  }

  /** BlobStore.get: the blob, at most `maxBytes`, or why not. */
  async get(url: string, maxBytes: number): Promise<BlobRead> {
    const name = this.nameOf(url);
    if (name === undefined) return { ok: false, reason: 'fetch' };
    let file;
    try {
      file = await open(join(this.dir, name), 'r');
    } catch {
      return { ok: false, reason: 'missing' };
    }
    try {
      const { size } = await file.stat();
      if (size > maxBytes) return { ok: false, reason: 'oversize' };
      const bytes = Buffer.alloc(size);
      const { bytesRead } = await file.read(bytes, 0, size, 0);
      return { ok: true, bytes: bytes.subarray(0, bytesRead) };
    } catch {
      return { ok: false, reason: 'fetch' };
    } finally {
      await file.close();
    }
  }

  /** BlobStore.delete: removes the blob; a missing one is fine. */
  async delete(url: string): Promise<void> {
    const name = this.nameOf(url);
    if (name !== undefined) await rm(join(this.dir, name), { force: true });
  }

  /** BlobStore.origins: publicUrl's origin; none for file: URLs (never fetched). */
  origins(): readonly string[] {
    return this.base.startsWith('file:') ? [] : [new URL(this.base).origin];
  }

  /** The blob name in one of our URLs; undefined for any other URL. */
  private nameOf(url: string): string | undefined {
    if (!url.startsWith(this.base)) return undefined;
    const name = url.slice(this.base.length);
    return BLOB_NAME.test(name) ? name : undefined;
  }
}
