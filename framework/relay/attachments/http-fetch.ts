/**
 * Downloads an attachment blob over HTTP(S) with a byte cap: a body longer than the cap is cut off
 * and reported `oversize` after reading at most cap + 1 bytes, whatever Content-Length said.
 */
import type { BlobRead } from './blob-store.js';

/** Reads `res`'s body, stopping as soon as it exceeds `maxBytes`. */
export async function readCapped(res: Response, maxBytes: number): Promise<BlobRead> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    return { ok: false, reason: 'oversize' };
  }
  if (!res.body) return { ok: true, bytes: new Uint8Array(0) };
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      return { ok: false, reason: 'oversize' };
    }
    chunks.push(value);
  }
  return { ok: true, bytes: Buffer.concat(chunks) };
}

/** The outcome of a response that is not 2xx. */
export function failedStatus(status: number): BlobRead {
  return { ok: false, reason: status === 404 || status === 410 ? 'missing' : 'fetch' };
}

/**
 * GETs an http: or https: URL with a byte cap. Other schemes (file:, data:…) are refused as `fetch`:
 * a URL comes from the network and must not read local files.
 */
export async function fetchBlob(
  url: string,
  maxBytes: number,
  signal?: AbortSignal,
  doFetch: typeof fetch = fetch,
): Promise<BlobRead> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { ok: false, reason: 'fetch' };
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return { ok: false, reason: 'fetch' };
  try {
    const res = await doFetch(parsed, { redirect: 'error', ...(signal ? { signal } : {}) });
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      return failedStatus(res.status);
    }
    return await readCapped(res, maxBytes);
  } catch {
    return { ok: false, reason: 'fetch' };
  }
}
