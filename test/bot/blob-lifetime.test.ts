/**
 * Blobs a bot uploaded are deleted after attachments.blobTtlSeconds (issue #14). Below the bot: a
 * recorded blob (row in the real store: SQLite, and Postgres when it answers) is kept until it
 * expires, then deleted from the blob store (a local directory and S3 on s3rver) and its row
 * removed; nothing happens without the duty; a failed delete keeps the row. Through the bot:
 * ctx.attach() of a large file records its blob before the message goes out, and the sweep deletes
 * it once the clock passes the lifetime.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import {
  Bot,
  BotAttachments,
  blobPrefix,
  BlobLifetime,
  OnCommand,
  type BotContext,
} from '../../framework/bot/index.js';
import {
  LocalDirectoryBlobStore,
  S3BlobStore,
  type AttachmentContent,
  type BlobStore,
  type ReceivedMessage,
} from '../../framework/relay/index.js';
import { createRelayStore, type TypeOrmRelayStore } from '../../framework/store/index.js';
import { createTestHarness } from '../../framework/testing/index.js';
import { getTestBroker } from '../support/broker.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresForTests } from '../support/postgres.js';
import { startTestS3, type TestS3 } from '../support/s3-server.js';

const log = pino({ level: 'silent' });
const DAY = 24 * 3600 * 1000;
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'relay-lifetime-'));
  dirs.push(d);
  return d;
}
let s3: TestS3;

beforeAll(async () => {
  s3 = await startTestS3();
});
afterAll(async () => {
  await s3?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const pg = await postgresForTests('blob lifetime on Postgres');
const schema = `blob_lifetime_${process.pid}_${Date.now()}`;

const backends: Array<[string, () => Promise<TypeOrmRelayStore>, () => Promise<void>]> = [
  ['SQLite', () => createRelayStore({ sqlitePath: join(tempDir(), 'relay.sqlite') }), async () => undefined],
];
if (pg) {
  backends.push([
    'Postgres',
    async () => {
      await createPgSchema(schema);
      return createRelayStore({ url: PG_URL, schema });
    },
    () => dropPgSchema(schema),
  ]);
}

const blobStores: Array<[string, () => BlobStore]> = [
  ['local directory', () => new LocalDirectoryBlobStore({ dir: tempDir() })],
  [
    'S3 (s3rver)',
    () =>
      new S3BlobStore({
        endpoint: s3.endpoint,
        bucket: s3.bucket,
        accessKeyId: s3.accessKeyId,
        secretAccessKey: s3.secretAccessKey,
        prefix: 'lifetime/',
      }),
  ],
];

describe.each(backends)('store: %s', (_name, open, cleanup) => {
  let store: TypeOrmRelayStore;
  beforeAll(async () => {
    store = await open();
  });
  afterAll(async () => {
    await store?.close();
    await cleanup();
  });

  test.each(blobStores)(
    '%s: kept until its lifetime is over, then deleted with its row',
    async (_b, make) => {
      const blobs = make();
      let now = 1_800_000_000_000;
      let owner = true;
      const bot = `lt${Math.floor(Math.random() * 1e9)}`;
      const lifetime = new BlobLifetime({
        bot,
        ledger: store,
        blobs,
        ttlSeconds: 7 * 24 * 3600,
        now: () => now,
        log,
        owns: () => owner,
      });
      const first = await blobs.put(new Uint8Array(100).fill(1));
      await lifetime.record(first);
      now += DAY;
      const second = await blobs.put(new Uint8Array(100).fill(2));
      await lifetime.record(second);
      expect(await store.listConversationData(blobPrefix(bot))).toHaveLength(2);

      now += 6 * DAY - 1;
      expect(await lifetime.sweep()).toBe(0);
      expect((await blobs.get(first, 100)).ok).toBe(true);

      now += 1;
      owner = false; // another replica holds the duty
      expect(await lifetime.sweep()).toBe(0);
      expect((await blobs.get(first, 100)).ok).toBe(true);

      owner = true;
      expect(await lifetime.sweep()).toBe(1);
      expect(await blobs.get(first, 100)).toEqual({ ok: false, reason: 'missing' });
      expect((await blobs.get(second, 100)).ok).toBe(true);
      const left = await store.listConversationData(blobPrefix(bot));
      expect(left.map((r) => JSON.parse(r.json) as unknown)).toEqual([{ url: second }]);

      now += DAY;
      expect(await lifetime.sweep()).toBe(1);
      expect(await blobs.get(second, 100)).toEqual({ ok: false, reason: 'missing' });
      expect(await store.listConversationData(blobPrefix(bot))).toEqual([]);
    },
  );

  test('a delete that fails keeps the row for the next pass', async () => {
    const real = new LocalDirectoryBlobStore({ dir: tempDir() });
    let failing = true;
    const blobs: BlobStore = {
      put: (b) => real.put(b),
      get: (u, m) => real.get(u, m),
      owns: (u) => real.owns(u),
      delete: async (u) => {
        if (failing) throw new Error('store down');
        await real.delete(u);
      },
    };
    let now = 1_800_000_000_000;
    const bot = `lf${Math.floor(Math.random() * 1e9)}`;
    const lifetime = new BlobLifetime({ bot, ledger: store, blobs, ttlSeconds: 60, now: () => now, log });
    const url = await real.put(new Uint8Array(10));
    await lifetime.record(url);
    now += 61_000;
    expect(await lifetime.sweep()).toBe(0);
    expect(await store.listConversationData(blobPrefix(bot))).toHaveLength(1);
    failing = false;
    expect(await lifetime.sweep()).toBe(1);
    expect(await real.get(url, 10)).toEqual({ ok: false, reason: 'missing' });
    expect(await store.listConversationData(blobPrefix(bot))).toEqual([]);
  });
});

test('an upload whose row cannot be written is taken back, and attach fails', async () => {
  const dir = tempDir();
  const blobs = new LocalDirectoryBlobStore({ dir });
  const ledger = await createRelayStore({ sqlitePath: join(tempDir(), 'closed.sqlite') });
  await ledger.close();
  const files = new BotAttachments({ store: blobs });
  files.startLifetime({ bot: 'b', ledger, now: Date.now, log, owns: () => true })?.stop();
  await expect(files.seal({ name: 'big.bin', bytes: new Uint8Array(100_000) })).rejects.toThrow();
  expect(readdirSync(dir)).toEqual([]);
  // Inline files upload nothing and need no row.
  expect((await files.seal({ name: 's.bin', bytes: new Uint8Array(10) })).source.kind).toBe('inline');
});

test('a bad blobTtlSeconds is a ConfigError naming the setting', () => {
  expect(() => new BotAttachments({ blobTtlSeconds: 0 })).toThrow('attachments.blobTtlSeconds');
});

@Bot({ name: 'lifetime-files', typing: false })
class FileBot {
  @OnCommand('file')
  async file(ctx: BotContext): Promise<void> {
    await ctx.attach({ name: 'big.bin', bytes: new Uint8Array(200_000).fill(5) });
  }
}

test('through the bot: ctx.attach() records its blob; the sweep deletes it after blobTtlSeconds', async () => {
  const broker = await getTestBroker();
  const blobs = new LocalDirectoryBlobStore({ dir: tempDir() });
  let now = Date.now();
  const h = await createTestHarness(FileBot, {
    brokerUrl: broker.url,
    runtimeOptions: {
      clock: () => now,
      attachments: { store: blobs, blobTtlSeconds: 3600, blobSweepMs: 50 },
    },
  });
  try {
    const alice = await h.peer();
    const got: ReceivedMessage[] = [];
    alice.client.on('message', (m) => {
      if (m.content.type === 'attachment') got.push(m);
    });
    await alice.send('/file');
    const deadline = Date.now() + 30_000;
    while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    const c = got[0]!.content as AttachmentContent;
    if (c.source.kind !== 'url') throw new Error('expected a blob');
    const url = c.source.url;
    const rows = await h.bot.store.listConversationData(blobPrefix('lifetime-files'));
    expect(rows.map((r) => JSON.parse(r.json) as unknown)).toEqual([{ url }]);
    expect((await blobs.get(url, 300_000)).ok).toBe(true);

    now += 3600_000 + 1;
    while ((await blobs.get(url, 300_000)).ok && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(await blobs.get(url, 300_000)).toEqual({ ok: false, reason: 'missing' });
    while ((await h.bot.store.listConversationData(blobPrefix('lifetime-files'))).length > 0) {
      if (Date.now() > deadline) throw new Error('the row was not removed');
      await new Promise((r) => setTimeout(r, 25));
    }
  } finally {
    await h.close();
    await broker.close();
  }
});
