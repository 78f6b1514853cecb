/**
 * Files in `relay-bot chat`, through a real broker: /attach sends a small file inline and a large one
 * as an encrypted blob (1:1 and in a group); files others send are checked and saved under the
 * download directory, never over an existing file; one whose digest is wrong is not saved.
 */
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { ChatFiles, safeFileName } from '../../cli/chat/attachments.js';
import { runChat } from '../../cli/chat/run.js';
import {
  LocalDirectoryBlobStore,
  MemoryRelayStore,
  openAttachment,
  RelayClient,
  sealAttachment,
  sha256Hex,
  type AttachmentContent,
  type ReceivedMessage,
} from '../../framework/relay/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';

let broker: TestBroker;
let prefix: string;
const clients: RelayClient[] = [];

async function client(): Promise<{ client: RelayClient; messages: ReceivedMessage[] }> {
  const c = await RelayClient.create({
    store: new MemoryRelayStore(),
    broker: { url: broker.url },
    topicPrefix: prefix,
    powBits: 8,
    groups: { commitDelayMs: 100 },
  });
  const messages: ReceivedMessage[] = [];
  c.on('message', (m) => messages.push(m));
  await c.start();
  clients.push(c);
  return { client: c, messages };
}

async function until<T>(
  what: () => string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
): Promise<T> {
  const end = Date.now() + 30_000;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const tempDir = (): string => mkdtempSync(join(tmpdir(), 'relay-chat-files-'));

function pattern(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 13 + seed) & 0xff;
  return b;
}

beforeAll(async () => {
  broker = await getTestBroker();
});
beforeEach(() => {
  prefix = uniqueName('chatfiles');
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.stop().catch(() => undefined)));
});
afterAll(async () => {
  await broker.close();
});

test('/attach sends inline and blob files; received ones are saved, a bad one is not', async () => {
  const dir = tempDir();
  const store = new LocalDirectoryBlobStore({ dir: join(dir, 'blobs') });
  const downloads = join(dir, 'downloads');
  const me = await client();
  const bob = await client();
  const lines: string[] = [];
  const input = new PassThrough();
  const output = new Writable({
    write: (chunk: Buffer, _e, cb) => {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  const files = new ChatFiles({ store, downloadDir: downloads });
  const done = runChat(
    me.client,
    { input, output, interactive: false },
    { peers: [bob.client.userId], drainMs: 0, files },
  );
  const small = join(dir, 'notes.txt');
  const big = join(dir, 'big.bin');
  writeFileSync(small, 'hello file\n');
  writeFileSync(big, pattern(200_000));

  // Sending: bob receives both and opens them to the same bytes.
  input.write(`/attach ${small}\n/attach ${big}\n`);
  const got = await until(
    () => lines.join('\n'),
    () => {
      const a = bob.messages.filter((m) => m.content.type === 'attachment');
      return a.length === 2 ? a : undefined;
    },
  );
  const [inline, blob] = got.map((m) => m.content as AttachmentContent);
  expect(inline).toMatchObject({ name: 'notes.txt', mime: 'text/plain', source: { kind: 'inline' } });
  expect(blob).toMatchObject({ name: 'big.bin', size: 200_000, source: { kind: 'url' } });
  const opened = await openAttachment(blob!, { stores: [store] });
  expect(opened.ok && sha256Hex(opened.file.bytes)).toBe(sha256Hex(pattern(200_000)));
  expect(lines).toContain('sent big.bin (195.3 KiB)');

  // Receiving: twice the same name is saved twice, side by side; a wrong digest is not saved.
  // A hostile name with directories is saved under its last part only.
  const sealed = await sealAttachment({ name: 'report.bin', bytes: pattern(100_000, 2) }, { store });
  const report = { ...sealed, name: '../report.bin' };
  await bob.client.send(me.client.userId, report);
  await bob.client.send(me.client.userId, report);
  await bob.client.send(me.client.userId, { ...report, sha256: sha256Hex(pattern(100_000, 3)) });
  await until(
    () => lines.join('\n'),
    // Each file shows a line when it arrives and another once it is saved or refused.
    () => lines.filter((l) => /report(-\d)?\.bin (dropped|\(.*saved to)/.test(l)).length === 3,
  );
  expect(readFileSync(join(downloads, 'report.bin')).equals(Buffer.from(pattern(100_000, 2)))).toBe(true);
  expect(readFileSync(join(downloads, 'report-1.bin')).equals(Buffer.from(pattern(100_000, 2)))).toBe(true);
  expect(existsSync(join(downloads, 'report-2.bin'))).toBe(false);
  expect(lines.some((l) => /report\.bin dropped \(digest check failed\)/.test(l))).toBe(true);
  expect(lines.some((l) => l.includes(`saved to ${join(downloads, 'report-1.bin')}`))).toBe(true);

  // A group: the file goes to the topic; another member opens it.
  input.write(`/group create files ${bob.client.userId}\n`);
  await until(
    () => lines.join('\n'),
    () => lines.some((l) => l.startsWith('now in #files')),
  );
  const groupId = (await me.client.groups())[0]!.groupId;
  await until(
    () => 'bob to join the group',
    async () => (await bob.client.group(groupId)) !== undefined,
  );
  input.write(`/attach ${big}\n`);
  const inGroup = await until(
    () => lines.join('\n'),
    () =>
      bob.messages.find(
        (m) =>
          m.conversation.kind === 'group' &&
          m.conversation.groupId === groupId &&
          m.content.type === 'attachment',
      ),
  );
  const g = await openAttachment(inGroup.content as AttachmentContent, { stores: [store] });
  expect(g.ok && g.file.size).toBe(200_000);

  input.end();
  await done;
});

test('/attach of a large file without a blob store names the setting; file names are made safe', async () => {
  const dir = tempDir();
  const me = await client();
  const bob = await client();
  const lines: string[] = [];
  const input = new PassThrough();
  const output = new Writable({
    write: (chunk: Buffer, _e, cb) => {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  const done = runChat(
    me.client,
    { input, output, interactive: false },
    { peers: [bob.client.userId], drainMs: 0, files: new ChatFiles({ downloadDir: join(dir, 'd') }) },
  );
  const big = join(dir, 'big.bin');
  writeFileSync(big, pattern(70_000));
  input.write(`/attach ${big}\n`);
  input.end();
  await done;
  expect(lines.some((l) => /not sent: .*attachments\.store/.test(l))).toBe(true);
  expect(safeFileName('../../etc/passwd')).toBe('passwd');
  expect(safeFileName('.bashrc')).toBe('_bashrc');
  expect(safeFileName('a$(rm -rf).txt')).toBe('a__rm -rf_.txt');
});

test('chat: a received URL on this machine is never fetched unless attachments.fetch opens it', async () => {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(req.url ?? '');
    res.writeHead(200).end(Buffer.alloc(100_016));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as { port: number }).port;
    const store = new LocalDirectoryBlobStore({ dir: mkdtempSync(join(tmpdir(), 'relay-chat-ssrf-')) });
    const sealed = await sealAttachment({ name: 'evil.bin', bytes: pattern(100_000) }, { store });
    if (sealed.source.kind !== 'url') throw new Error('expected a blob');
    const evil = { ...sealed, source: { ...sealed.source, url: `http://localhost:${port}/admin` } };
    const downloadDir = mkdtempSync(join(tmpdir(), 'relay-chat-ssrf-d-'));
    expect(await new ChatFiles({ downloadDir }).save(evil)).toBe(
      'file evil.bin dropped (refused check failed)',
    );
    expect(hits).toEqual([]);
    const opened = new ChatFiles({ downloadDir, fetch: { allowHosts: ['localhost'] } });
    expect(await opened.save(evil)).toBe('file evil.bin dropped (decrypt check failed)');
    expect(hits).toEqual(['/admin']);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
