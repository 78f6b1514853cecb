/**
 * A BlobStore on any S3-compatible service (AWS S3, MinIO, Ceph, R2…), through aws4fetch: a
 * dependency-free SigV4 signer over fetch (see docs/agents.md for why not @aws-sdk/client-s3).
 * Objects are addressed path-style (`<endpoint>/<bucket>/<prefix><name>`), which every
 * S3-compatible server accepts. Receivers get a presigned GET URL (valid `urlTtlSeconds`, at most
 * the 7 days SigV4 allows) unless `publicUrl` says the objects are readable there without one; the
 * blobs are ciphertext either way.
 */
import { randomBytes } from 'node:crypto';
import { AwsClient } from 'aws4fetch';
import { ConfigError, StorageError } from '../errors.js';
import { BLOB_NAME, blobName, type BlobRead, type BlobStore } from './blob-store.js';
import { failedStatus, readCapped } from './http-fetch.js';

/** The longest a SigV4 presigned URL may stay valid (7 days), in seconds. */
export const MAX_PRESIGNED_URL_SECONDS = 7 * 24 * 3600;

/** S3BlobStore's options. */
export interface S3BlobStoreOptions {
  /** The service's base URL, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`. */
  endpoint: string;
  /** The bucket the blobs go in (it must exist). */
  bucket: string;
  /** Signing region (default `us-east-1`, what most S3-compatible servers expect). */
  region?: string;
  /** The access key id of credentials that may put, get and delete in the bucket. */
  accessKeyId: string;
  /** Its secret (from the environment, not a config file). */
  secretAccessKey: string;
  /** For temporary credentials. */
  sessionToken?: string;
  /** Prepended to object names, e.g. `relay/`. */
  prefix?: string;
  /** Where objects are publicly readable (`<publicUrl>/<prefix><name>`); default: presigned URLs. */
  publicUrl?: string;
  /** How long a presigned URL works (default and at most 7 days). */
  urlTtlSeconds?: number;
}

/** Blobs as objects of one bucket of an S3-compatible service. */
export class S3BlobStore implements BlobStore {
  private readonly client: AwsClient;
  /** `<endpoint>/<bucket>/<prefix>`: what an object URL starts with. */
  private readonly objectBase: string;
  private readonly publicBase: string | undefined;
  private readonly ttl: number;

  constructor(options: S3BlobStoreOptions) {
    const o = options ?? ({} as S3BlobStoreOptions);
    for (const key of ['endpoint', 'bucket', 'accessKeyId', 'secretAccessKey'] as const) {
      if (typeof o[key] !== 'string' || o[key] === '') {
        throw new ConfigError(`S3BlobStore needs ${key} (attachments.store.${key} in the config)`);
      }
    }
    if (!/^https?:\/\//.test(o.endpoint)) {
      throw new ConfigError(
        `attachments.store.endpoint must be an http(s) URL, got ${JSON.stringify(o.endpoint)}`,
      );
    }
    this.ttl = o.urlTtlSeconds ?? MAX_PRESIGNED_URL_SECONDS;
    if (!Number.isInteger(this.ttl) || this.ttl < 1 || this.ttl > MAX_PRESIGNED_URL_SECONDS) {
      throw new ConfigError(`attachments.store.urlTtlSeconds is 1..${MAX_PRESIGNED_URL_SECONDS} (7 days)`);
    }
    const prefix = o.prefix ?? '';
    this.objectBase = `${o.endpoint.replace(/\/+$/, '')}/${encodeURIComponent(o.bucket)}/${prefix}`;
    this.publicBase = o.publicUrl === undefined ? undefined : `${o.publicUrl.replace(/\/+$/, '')}/${prefix}`;
    this.client = new AwsClient({
      accessKeyId: o.accessKeyId,
      secretAccessKey: o.secretAccessKey,
      ...(o.sessionToken !== undefined ? { sessionToken: o.sessionToken } : {}),
      service: 's3',
      region: o.region ?? 'us-east-1',
      // aws4fetch retries 5xx ten times by default; an upload in a handler should fail sooner.
      retries: 2,
    });
  }

  /** BlobStore.put: writes the blob under a fresh random name, returns its URL. */
  async put(bytes: Uint8Array): Promise<string> {
    const name = blobName((n) => randomBytes(n));
    const res = await this.client.fetch(this.objectBase + name, {
      method: 'PUT',
      body: bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });
    await res.body?.cancel().catch(() => undefined);
    if (!res.ok) throw new StorageError(`S3 upload failed: HTTP ${res.status} from the blob store`);
    if (this.publicBase !== undefined) return this.publicBase + name;
    const signed = await this.client.sign(`${this.objectBase}${name}?X-Amz-Expires=${this.ttl}`, {
      method: 'GET',
      aws: { signQuery: true },
    });
    return signed.url;
  }

  /** BlobStore.owns: one of this store's URLs. */
  owns(url: string): boolean {
    return this.nameOf(url) !== undefined;
  }

  /** BlobStore.get: the blob, at most `maxBytes`, or why not. */
  async get(url: string, maxBytes: number, signal?: AbortSignal): Promise<BlobRead> {
    const name = this.nameOf(url);
    if (name === undefined) return { ok: false, reason: 'fetch' };
    try {
      const res = await this.client.fetch(this.objectBase + name, signal ? { signal } : {});
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        return failedStatus(res.status);
      }
      return await readCapped(res, maxBytes);
    } catch {
      return { ok: false, reason: 'fetch' };
    }
  }

  /** BlobStore.delete: removes the blob; a missing one is fine. */
  async delete(url: string): Promise<void> {
    const name = this.nameOf(url);
    if (name === undefined) return;
    const res = await this.client.fetch(this.objectBase + name, { method: 'DELETE' });
    await res.body?.cancel().catch(() => undefined);
    if (!res.ok && res.status !== 404) throw new StorageError(`S3 delete failed: HTTP ${res.status}`);
  }

  /** BlobStore.origins: the endpoint's origin and publicUrl's. */
  origins(): readonly string[] {
    return [this.objectBase, this.publicBase].flatMap((b) => (b === undefined ? [] : [new URL(b).origin]));
  }

  /** The object name in one of our URLs (presigned or public); undefined for any other URL. */
  private nameOf(url: string): string | undefined {
    const path = url.split('?')[0] ?? '';
    for (const base of [this.objectBase, this.publicBase]) {
      if (base === undefined || !path.startsWith(base)) continue;
      const name = path.slice(base.length);
      if (BLOB_NAME.test(name)) return name;
    }
    return undefined;
  }
}
