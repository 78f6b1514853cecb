/**
 * Attachments below the bot: one contract suite for every BlobStore (a local directory with file:
 * URLs, the same served over HTTP, S3BlobStore against a real S3-compatible server, s3rver), then
 * sealing and opening: inline and blob round trips, and every way a received one fails its checks.
 */
import { createServer, type Server } from 'node:http';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { BotAttachments } from '../../framework/bot/index.js';
import {
  ConfigError,
  fetchBlob,
  FetchPolicy,
  GCM_TAG_LENGTH,
  LocalDirectoryBlobStore,
  openAttachment,
  S3BlobStore,
  sealAttachment,
  sha256Hex,
  type AttachmentContent,
  type BlobStore,
  type ReceivedMessage,
} from '../../framework/relay/index.js';
import type { UnixSeconds, UserIdHex } from '../../framework/relay/brand.js';
import { startTestS3, type TestS3 } from '../support/s3-server.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'relay-blobs-'));
  dirs.push(d);
  return d;
}

/** Serves `dir` read-only over HTTP, as nginx would serve a local blob store's directory. */
async function serveDir(dir: string): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const name = (req.url ?? '').slice(1);
    if (!/^[0-9a-f]{32}$/.test(name)) return void res.writeHead(404).end();
    const stream = createReadStream(join(dir, name));
    stream.on('error', () => res.writeHead(404).end());
    stream.on('open', () => stream.pipe(res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, server };
}

function pattern(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/** The policy a receiver with `store` configured downloads under. */
function ownOrigins(store: BlobStore): FetchPolicy {
  return new FetchPolicy({ origins: store.origins?.() ?? [] });
}

/** Downloads may go to 127.0.0.1, where this file's test servers listen. */
const LOOPBACK = new FetchPolicy({ allowHosts: ['127.0.0.1'] });

let s3: TestS3;
let http: { url: string; server: Server };
const servedDir = tempDir();

beforeAll(async () => {
  s3 = await startTestS3();
  http = await serveDir(servedDir);
});
afterAll(async () => {
  await s3?.close();
  await new Promise((r) => http?.server.close(r));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface StoreCase {
  name: string;
  make: () => BlobStore;
  /** How a receiver without this store reads its URLs, if it can. */
  public: boolean;
}

const stores: StoreCase[] = [
  {
    name: 'local directory, file: URLs',
    make: () => new LocalDirectoryBlobStore({ dir: tempDir() }),
    public: false,
  },
  {
    name: 'local directory served over HTTP',
    make: () => new LocalDirectoryBlobStore({ dir: servedDir, publicUrl: http.url }),
    public: true,
  },
  {
    name: 'S3 (s3rver), presigned URLs',
    make: () =>
      new S3BlobStore({
        endpoint: s3.endpoint,
        bucket: s3.bucket,
        accessKeyId: s3.accessKeyId,
        secretAccessKey: s3.secretAccessKey,
        prefix: 'relay/',
      }),
    public: true,
  },
];

describe.each(stores)('BlobStore contract: $name', (c) => {
  test('put, then get by the URL; the URL is ours and unguessable', async () => {
    const store = c.make();
    const bytes = pattern(100_000);
    const url = await store.put(bytes);
    expect(store.owns(url)).toBe(true);
    expect(url).toMatch(/[0-9a-f]{32}/);
    expect(await store.put(bytes)).not.toBe(url);
    const read = await store.get(url, bytes.length);
    expect(read.ok && Buffer.from(read.bytes).equals(Buffer.from(bytes))).toBe(true);
    if (c.public) {
      // Served on 127.0.0.1: refused on the default policy, fetched from the store's own origin.
      expect(await fetchBlob(url, bytes.length)).toEqual({ ok: false, reason: 'refused' });
      const viaHttp = await fetchBlob(url, bytes.length, undefined, { policy: ownOrigins(store) });
      expect(viaHttp.ok && Buffer.from(viaHttp.bytes).equals(Buffer.from(bytes))).toBe(true);
    }
  });

  test('a blob longer than the cap is oversize; a deleted one is missing', async () => {
    const store = c.make();
    const url = await store.put(pattern(5000));
    expect(await store.get(url, 4999)).toEqual({ ok: false, reason: 'oversize' });
    if (c.public) {
      const policy = ownOrigins(store);
      expect(await fetchBlob(url, 4999, undefined, { policy })).toEqual({ ok: false, reason: 'oversize' });
    }
    await store.delete(url);
    expect(await store.get(url, 5000)).toEqual({ ok: false, reason: 'missing' });
    await store.delete(url);
  });

  test('URLs of others, and path tricks, are not ours', async () => {
    const store = c.make();
    const url = await store.put(pattern(10));
    expect(store.owns('https://elsewhere.example/0123456789abcdef0123456789abcdef')).toBe(false);
    expect(store.owns(url.replace(/[0-9a-f]{32}/, '../../etc/passwd'))).toBe(false);
    expect(await store.get('https://elsewhere.example/x', 10)).toEqual({ ok: false, reason: 'fetch' });
  });
});

test('fetchBlob takes http(s) only: a file: URL from the network never reads a local file', async () => {
  const store = new LocalDirectoryBlobStore({ dir: tempDir() });
  const url = await store.put(pattern(10));
  expect(url.startsWith('file:')).toBe(true);
  expect(await fetchBlob(url, 100)).toEqual({ ok: false, reason: 'fetch' });
  expect(await fetchBlob('not a url', 100)).toEqual({ ok: false, reason: 'fetch' });
});

describe('seal and open', () => {
  const store = new LocalDirectoryBlobStore({ dir: tempDir() });

  test('≤ 64 KiB goes inline, more goes encrypted into the store; both open to the same bytes', async () => {
    for (const size of [0, 65_536, 65_537, 300_000]) {
      const bytes = pattern(size);
      const c = await sealAttachment({ name: 'f.bin', bytes }, { store });
      expect(c.source.kind).toBe(size <= 65_536 ? 'inline' : 'url');
      expect(c).toMatchObject({ size, sha256: sha256Hex(bytes), mime: 'application/octet-stream' });
      const opened = await openAttachment(c, { stores: [store] });
      expect(opened.ok && Buffer.from(opened.file.bytes).equals(Buffer.from(bytes))).toBe(true);
    }
  });

  test('the stored blob is ciphertext: the file does not appear in it', async () => {
    const bytes = new Uint8Array(100_000).fill(0x41);
    const c = await sealAttachment({ name: 'a.txt', bytes }, { store });
    if (c.source.kind !== 'url') throw new Error('expected a blob');
    const read = await store.get(c.source.url, 200_000);
    expect(read.ok && read.bytes.length).toBe(100_000 + GCM_TAG_LENGTH);
    expect(read.ok && Buffer.from(read.bytes).includes(Buffer.alloc(64, 0x41))).toBe(false);
  });

  test('over 64 KiB without a store: a ConfigError naming the setting', async () => {
    await expect(sealAttachment({ name: 'big.bin', bytes: pattern(70_000) })).rejects.toThrow(ConfigError);
    await expect(new BotAttachments().seal({ name: 'big.bin', bytes: pattern(70_000) })).rejects.toThrow(
      /attachments\.store/,
    );
    await expect(sealAttachment({ name: '../x', bytes: pattern(1) })).rejects.toThrow(/without directories/);
  });

  async function blob(size = 80_000): Promise<AttachmentContent & { source: { kind: 'url'; url: string } }> {
    const c = await sealAttachment({ name: 'b.bin', bytes: pattern(size) }, { store });
    if (c.source.kind !== 'url') throw new Error('expected a blob');
    return c as AttachmentContent & { source: { kind: 'url'; url: string } };
  }

  test.each([
    [
      'a digest of other bytes',
      'attachment_digest',
      (c: AttachmentContent) => ({ ...c, sha256: sha256Hex(pattern(80_000, 2)) }),
    ],
    [
      'a declared size larger than the file',
      'attachment_size',
      (c: AttachmentContent) => ({ ...c, size: c.size + 1 }),
    ],
    [
      'a declared size smaller than the blob',
      'attachment_oversize',
      (c: AttachmentContent) => ({ ...c, size: 70_000 }),
    ],
    [
      'a declared size over the receiver limit',
      'attachment_oversize',
      (c: AttachmentContent) => ({ ...c, size: 26 * 1024 * 1024 }),
    ],
    [
      'another key',
      'attachment_decrypt',
      (c: AttachmentContent) => ({ ...c, source: { ...c.source, key: new Uint8Array(32) } }),
    ],
    [
      'a URL no store owns and no one serves',
      'attachment_fetch',
      (c: AttachmentContent) => ({
        ...c,
        source: { ...c.source, url: 'http://127.0.0.1:1/0123456789abcdef0123456789abcdef' },
      }),
    ],
  ] as const)('%s is dropped as %s', async (_what, reason, change) => {
    const c = change(await blob()) as AttachmentContent;
    expect(await openAttachment(c, { stores: [store], fetchPolicy: LOOPBACK })).toEqual({
      ok: false,
      reason,
    });
  });

  test("a URL on the receiver's own host is refused on the default policy (request forgery)", async () => {
    const c = await blob();
    const moved = {
      ...c,
      source: { ...c.source, url: 'http://127.0.0.1:1/0123456789abcdef0123456789abcdef' },
    };
    expect(await openAttachment(moved, { stores: [store] })).toEqual({
      ok: false,
      reason: 'attachment_refused',
    });
  });

  test('a blob that is gone is missing', async () => {
    const c = await blob();
    await store.delete(c.source.url);
    expect(await openAttachment(c, { stores: [store] })).toEqual({ ok: false, reason: 'attachment_missing' });
  });

  test('an inline file that does not match its size or digest never reaches the bot', async () => {
    const bot = new BotAttachments();
    const data = pattern(100);
    const message = (content: AttachmentContent): ReceivedMessage => ({
      from: 'a'.repeat(32) as UserIdHex,
      conversation: { kind: 'direct', id: 'a'.repeat(32) as UserIdHex, groupId: 'e'.repeat(64) },
      content,
      receivedAt: 1_700_000_000 as UnixSeconds,
    });
    const good = await sealAttachment({ name: 'i.bin', bytes: data });
    const log = pino({ level: 'silent' });
    expect((await bot.receive(message(good), log))?.[0]?.sha256).toBe(sha256Hex(data));
    expect(await bot.receive(message({ ...good, sha256: sha256Hex(pattern(100, 9)) }), log)).toBeUndefined();
    expect(await bot.receive(message({ ...good, size: 99 }), log)).toBeUndefined();
    expect(bot.drops.snapshot()).toMatchObject({ attachment_digest: 1, attachment_size: 1 });
  });
});

test('an HTTP server that sends more than declared is cut off at the cap (no Content-Length)', async () => {
  let sent = 0;
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(64 * 1024);
    const pump = (): void => {
      while (sent < 64 * 1024 * 1024) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.on('close', () => (sent = Infinity));
    pump();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  try {
    const url = `http://127.0.0.1:${port}/0123456789abcdef0123456789abcdef`;
    expect(await fetchBlob(url, 100_000, undefined, { policy: LOOPBACK })).toEqual({
      ok: false,
      reason: 'oversize',
    });
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
