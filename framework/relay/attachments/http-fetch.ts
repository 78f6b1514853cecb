/**
 * Downloads an attachment blob over HTTP(S) with a byte cap: a body longer than the cap is cut off
 * and reported `oversize` after reading at most cap + 1 bytes, whatever Content-Length said. Where
 * it may connect is fetch-policy.ts's decision, made on the address connected to.
 */
import type { LookupAddress } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import type { BlobRead } from './blob-store.js';
import { DEFAULT_FETCH_POLICY, type FetchPolicy } from './fetch-policy.js';

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

/** Name resolution: every address of `host`, as dns.lookup({ all: true }) gives them. */
export type HostResolver = (host: string) => Promise<readonly LookupAddress[]>;

/** fetchBlob()'s options. */
export interface FetchBlobOptions {
  /** Where downloads may connect (default: public addresses only, DEFAULT_FETCH_POLICY). */
  policy?: FetchPolicy;
  /** How host names are resolved (default dns.lookup); the one resolution whose addresses are checked and used. */
  resolve?: HostResolver;
}

const systemResolve: HostResolver = (host) => dnsLookup(host, { all: true });

/**
 * GETs an http: or https: URL with a byte cap, connecting only where `policy` allows. Other schemes
 * (file:, data:…) are `fetch`: a URL comes from the network and must not read local files. A host
 * name is resolved once, inside the connection's own lookup: every address is checked and the
 * connection goes to a checked one, so a name resolving to 127.0.0.1, or re-resolving elsewhere
 * between a check and the connect (DNS rebinding), is `refused` before any byte is sent. No
 * redirects (a 3xx is `fetch`), no connection reuse across downloads (agent: false), no proxy.
 */
export async function fetchBlob(
  url: string,
  maxBytes: number,
  signal?: AbortSignal,
  options: FetchBlobOptions = {},
): Promise<BlobRead> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { ok: false, reason: 'fetch' };
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return { ok: false, reason: 'fetch' };
  const policy = options.policy ?? DEFAULT_FETCH_POLICY;
  const trusted = policy.trustsUrl(parsed);
  const hostname = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  // An address in the URL is connected to as it is (no lookup runs): check it here.
  if (isIP(hostname) !== 0 && !trusted && !policy.allowsAddress(hostname)) {
    return { ok: false, reason: 'refused' };
  }
  const resolve = options.resolve ?? systemResolve;
  let refused = false;
  const lookup: LookupFunction = (host, opts, callback) => {
    resolve(host).then(
      (found) => {
        const addresses = opts.family ? found.filter((a) => a.family === opts.family) : [...found];
        if (!trusted && found.some((a) => !policy.allowsAddress(a.address))) {
          refused = true;
          return callback(new Error('refused by the attachment fetch policy'), '', 0);
        }
        const first = addresses[0];
        if (!first)
          return callback(Object.assign(new Error(`no address for ${host}`), { code: 'ENOTFOUND' }), '', 0);
        if (opts.all) return (callback as (e: null, a: LookupAddress[]) => void)(null, addresses);
        return callback(null, first.address, first.family);
      },
      (e: NodeJS.ErrnoException) => callback(e, '', 0),
    );
  };
  let req: ClientRequest | undefined;
  try {
    const res = await new Promise<IncomingMessage>((resolveRes, reject) => {
      req = (parsed.protocol === 'https:' ? httpsRequest : httpRequest)(
        {
          protocol: parsed.protocol,
          hostname,
          port: parsed.port,
          path: parsed.pathname + parsed.search,
          method: 'GET',
          agent: false,
          lookup,
          ...(signal ? { signal } : {}),
        },
        resolveRes,
      );
      req.on('error', reject);
      req.end();
    });
    if (!res.statusCode || res.statusCode < 200 || res.statusCode > 299)
      return failedStatus(res.statusCode ?? 0);
    return await readCappedStream(res, maxBytes);
  } catch {
    return { ok: false, reason: refused ? 'refused' : 'fetch' };
  } finally {
    req?.destroy();
  }
}

/** readCapped() for a node:http response. */
async function readCappedStream(res: IncomingMessage, maxBytes: number): Promise<BlobRead> {
  const declared = Number(res.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) return { ok: false, reason: 'oversize' };
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) return { ok: false, reason: 'oversize' };
    chunks.push(chunk);
  }
  if (!res.complete) return { ok: false, reason: 'fetch' };
  return { ok: true, bytes: Buffer.concat(chunks) };
}
