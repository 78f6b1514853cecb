/**
 * Server-side request forgery through attachments (issue #14), end to end through the real broker:
 * a hostile peer sends the bot an attachment whose URL points at a service on the bot's own host
 * (an HTTP server this test runs on 127.0.0.1, named by address and by `localhost`). A bot on its
 * defaults must never send that server a request: the drop is counted as `attachment_refused` and
 * the handler never runs. A bot configured with attachments.fetch.allowHosts does fetch there.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bot, OnAttachment, OnCommand, type BotContext } from '../../framework/bot/index.js';
import {
  LocalDirectoryBlobStore,
  sealAttachment,
  type AttachmentContent,
  type ReceivedFile,
} from '../../framework/relay/index.js';
import { createTestHarness, type TestHarness, type TestPeer } from '../../framework/testing/index.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';

@Bot({ name: 'ssrf-files', typing: false })
class FileBot {
  readonly seen: ReceivedFile[] = [];

  @OnCommand('ping')
  ping(): string {
    return 'pong';
  }

  @OnAttachment()
  got(ctx: BotContext): string {
    this.seen.push(ctx.attachments[0]!);
    return 'got it';
  }
}

let broker: TestBroker;
let dir: string;
let store: LocalDirectoryBlobStore;
/** A service on the bot's host that a peer must not be able to reach through the bot. */
let server: Server;
let port: number;
/** The paths the local service was asked for. */
const hits: string[] = [];

beforeAll(async () => {
  broker = await getTestBroker();
  dir = mkdtempSync(join(tmpdir(), 'relay-ssrf-'));
  store = new LocalDirectoryBlobStore({ dir });
  server = createServer((req, res) => {
    hits.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.end(Buffer.alloc(100_016, 7));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await broker?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A sealed 100 kB file whose URL is replaced by `url` (what a hostile peer can send). */
async function pointedAt(url: string): Promise<AttachmentContent> {
  const c = await sealAttachment({ name: 'evil.bin', bytes: new Uint8Array(100_000) }, { store });
  if (c.source.kind !== 'url') throw new Error('expected a blob');
  return { ...c, source: { ...c.source, url } };
}

describe('a bot on its defaults', () => {
  let h: TestHarness;
  let mallory: TestPeer;
  const bot = (): FileBot => h.bot.instance as FileBot;

  beforeAll(async () => {
    h = await createTestHarness(FileBot, {
      brokerUrl: broker.url,
      runtimeOptions: { attachments: { store } },
    });
    mallory = await h.peer();
  });
  afterAll(async () => {
    await h?.close();
  });

  test.each([
    ['127.0.0.1', (p: number) => `http://127.0.0.1:${p}/latest/meta-data/a`],
    ['localhost (a name that resolves to loopback)', (p: number) => `http://localhost:${p}/admin/b`],
    ['[::ffff:127.0.0.1] (IPv4-mapped IPv6)', (p: number) => `http://[::ffff:127.0.0.1]:${p}/c`],
  ])('never requests a URL on %s: dropped as attachment_refused', async (_what, urlOf) => {
    const drops = h.bot.runtime.attachments.drops;
    const before = drops.snapshot();
    const hitsBefore = hits.length;
    await mallory.client.send(h.bot.userId, await pointedAt(urlOf(port)));
    // One conversation is handled in order: pong comes after the attachment was dealt with.
    await mallory.send('/ping');
    expect((await mallory.nextReply()).content).toBe('pong');
    expect(hits.slice(hitsBefore)).toEqual([]);
    const after = drops.snapshot() as Record<string, number>;
    expect(after['attachment_refused']).toBe(
      ((before as Record<string, number>)['attachment_refused'] ?? 0) + 1,
    );
    expect(bot().seen).toEqual([]);
  });
});

describe('a bot with attachments.fetch.allowHosts naming the host', () => {
  let h: TestHarness;
  let mallory: TestPeer;

  beforeAll(async () => {
    h = await createTestHarness(FileBot, {
      brokerUrl: broker.url,
      runtimeOptions: { attachments: { store, fetch: { allowHosts: ['localhost', '127.0.0.1/32'] } } },
    });
    mallory = await h.peer();
  });
  afterAll(async () => {
    await h?.close();
  });

  test.each([
    ['127.0.0.1', (p: number) => `http://127.0.0.1:${p}/d`],
    ['localhost', (p: number) => `http://localhost:${p}/e`],
  ])('fetches from %s (the bytes then fail the GCM check)', async (_what, urlOf) => {
    const drops = h.bot.runtime.attachments.drops;
    const before = drops.get('attachment_decrypt');
    const hitsBefore = hits.length;
    await mallory.client.send(h.bot.userId, await pointedAt(urlOf(port)));
    await mallory.send('/ping');
    expect((await mallory.nextReply()).content).toBe('pong');
    expect(hits.length).toBe(hitsBefore + 1);
    expect(drops.get('attachment_decrypt')).toBe(before + 1);
  });
});
