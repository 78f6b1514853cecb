/**
 * Attachments end to end through the real broker (Mosquitto when it answers) with the bot on the
 * test harness: a person sends the bot files (inline and as blobs; 1:1 and in a group) and the bot
 * sees them in ctx.attachments; the bot sends files with ctx.attach() and the person opens them.
 * Hostile: a wrong digest, a wrong size, an oversize download (an HTTP server sending more than
 * declared) and a missing blob are dropped with counters, and the handler never sees them.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bot, OnAttachment, OnCommand, type BotContext } from '../../framework/bot/index.js';
import {
  LocalDirectoryBlobStore,
  openAttachment,
  sealAttachment,
  sha256Hex,
  type AttachmentContent,
  type ReceivedFile,
  type ReceivedMessage,
  type RelayClient,
} from '../../framework/relay/index.js';
import { createTestHarness, type TestHarness, type TestPeer } from '../../framework/testing/index.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';
import { sleep } from '../support/child.js';

function pattern(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

@Bot({ name: 'files', typing: false })
class FileBot {
  readonly seen: ReceivedFile[] = [];

  @OnCommand('file', { args: '<size:int>' })
  async file(ctx: BotContext<{ size: number }>): Promise<void> {
    await ctx.attach({ name: `f${ctx.args.size}.bin`, bytes: pattern(ctx.args.size, 3) });
  }

  @OnCommand('ping')
  ping(): string {
    return 'pong';
  }

  @OnAttachment()
  got(ctx: BotContext): string {
    const f = ctx.attachments[0]!;
    this.seen.push(f);
    return `got ${f.name} ${f.size} ${f.sha256}`;
  }
}

let broker: TestBroker;
let h: TestHarness;
let alice: TestPeer;
let dir: string;
/** The bot's store; alice reads its file: URLs through the same directory (one machine). */
let store: LocalDirectoryBlobStore;

const bot = (): FileBot => h.bot.instance as FileBot;
const drops = () => h.bot.runtime.attachments.drops;

function recorder(client: RelayClient, from: () => string): ReceivedMessage[] {
  const got: ReceivedMessage[] = [];
  client.on('message', (m) => {
    if (m.from === from()) got.push(m);
  });
  return got;
}

async function eventually(check: () => boolean, what: () => string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what()}`);
    await sleep(25);
  }
}

beforeAll(async () => {
  broker = await getTestBroker();
  dir = mkdtempSync(join(tmpdir(), 'relay-attach-'));
  store = new LocalDirectoryBlobStore({ dir });
  h = await createTestHarness(FileBot, {
    brokerUrl: broker.url,
    // 127.0.0.1 opened for the oversize test's server (attachments-ssrf.test.ts: the default refuses it).
    runtimeOptions: { attachments: { store, maxBytes: 1024 * 1024, fetch: { allowHosts: ['127.0.0.1'] } } },
  });
  alice = await h.peer();
});

afterAll(async () => {
  await h?.close();
  await broker?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('person → bot, 1:1', () => {
  test.each([
    ['inline', 20_000],
    ['blob', 300_000],
  ])('%s: the handler gets the verified file', async (_kind, size) => {
    const bytes = pattern(size);
    const c = await sealAttachment({ name: `in${size}.bin`, bytes }, { store });
    expect(c.source.kind).toBe(size > 65_536 ? 'url' : 'inline');
    await alice.client.send(h.bot.userId, c);
    const reply = await alice.nextReply();
    expect(reply.content).toBe(`got in${size}.bin ${size} ${sha256Hex(bytes)}`);
    expect(Buffer.from(bot().seen.at(-1)!.bytes).equals(Buffer.from(bytes))).toBe(true);
  });
});

describe('bot → person, 1:1', () => {
  test.each([
    ['inline', 1000],
    ['blob', 200_000],
  ])('%s: ctx.attach() sends a file the person opens to the same bytes', async (_kind, size) => {
    const got = recorder(alice.client, () => h.bot.userId);
    const sent = await alice.send(`/file ${size}`);
    await eventually(
      () => got.some((m) => m.content.type === 'attachment'),
      () => JSON.stringify(got.map((m) => m.content.type)),
    );
    const c = got.find((m) => m.content.type === 'attachment')!.content as AttachmentContent;
    expect(c).toMatchObject({ name: `f${size}.bin`, size, replyTo: sent.id });
    expect(c.source.kind).toBe(size > 65_536 ? 'url' : 'inline');
    const opened = await openAttachment(c, { stores: [store] });
    expect(opened.ok && Buffer.from(opened.file.bytes).equals(Buffer.from(pattern(size, 3)))).toBe(true);
    // nextReply() keeps its own cursor over the bot's direct messages: move it past this one.
    await alice.nextReply();
  });
});

test('a group, both ways, inline and blob: members see the same files', async () => {
  const bob = await h.peer();
  const group = await alice.createGroup({ members: [h.bot.userId, bob.userId], name: 'files' });
  await bob.waitForGroup(group.groupId);
  const deadline = Date.now() + 30_000;
  while (!(await h.bot.runtime.groups()).some((g) => g.groupId === group.groupId)) {
    if (Date.now() > deadline) throw new Error('the bot did not join the group');
    await sleep(50);
  }
  const seenByBob = recorder(bob.client, () => h.bot.userId);
  for (const size of [30_000, 150_000]) {
    const bytes = pattern(size, 5);
    const sent = await alice.client.sendToGroup(
      group.groupId,
      await sealAttachment({ name: `g${size}.bin`, bytes }, { store }),
    );
    const answer = await alice.groupReplyTo(group.groupId, sent.id);
    expect(answer.content).toBe(`got g${size}.bin ${size} ${sha256Hex(bytes)}`);

    const asked = await alice.sendToGroup(group.groupId, `/file ${size}`);
    await eventually(
      () => seenByBob.some((m) => m.content.type === 'attachment' && m.content.replyTo === asked.id),
      () => JSON.stringify(seenByBob.map((m) => m.content.type)),
    );
    const m = seenByBob.find((x) => x.content.type === 'attachment' && x.content.replyTo === asked.id)!;
    expect(m.conversation.kind).toBe('group');
    const opened = await openAttachment(m.content as AttachmentContent, { stores: [store] });
    expect(opened.ok && Buffer.from(opened.file.bytes).equals(Buffer.from(pattern(size, 3)))).toBe(true);
  }
});

describe('hostile attachments are dropped with a counter; the handler never sees them', () => {
  let server: Server;
  let url: string;

  beforeAll(async () => {
    // Sends far more than any declared size, without a Content-Length.
    server = createServer((_req, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 1);
      let n = 0;
      const pump = (): void => {
        while (n++ < 256) if (!res.write(chunk)) return void res.once('drain', pump);
        res.end();
      };
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/0123456789abcdef0123456789abcdef`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  async function blob(): Promise<AttachmentContent & { source: { kind: 'url'; url: string } }> {
    const c = await sealAttachment({ name: 'evil.bin', bytes: pattern(100_000, 9) }, { store });
    if (c.source.kind !== 'url') throw new Error('expected a blob');
    return c as AttachmentContent & { source: { kind: 'url'; url: string } };
  }

  test.each([
    [
      'a wrong digest',
      'attachment_digest',
      async () => ({ ...(await blob()), sha256: sha256Hex(pattern(100_000, 8)) }),
    ],
    ['a wrong size', 'attachment_size', async () => ({ ...(await blob()), size: 100_001 })],
    [
      'an oversize download',
      'attachment_oversize',
      async () => {
        const c = await blob();
        return { ...c, source: { ...c.source, url } };
      },
    ],
    [
      'a declared size over the bot limit',
      'attachment_oversize',
      async () => ({ ...(await blob()), size: 2 * 1024 * 1024 }),
    ],
    [
      'a missing blob',
      'attachment_missing',
      async () => {
        const c = await blob();
        await store.delete(c.source.url);
        return c;
      },
    ],
  ] as const)('%s (%s)', async (_what, reason, make) => {
    const before = drops().get(reason);
    const seen = bot().seen.length;
    await alice.client.send(h.bot.userId, (await make()) as AttachmentContent);
    // One conversation is handled in order: pong comes after the attachment was dealt with.
    await alice.send('/ping');
    expect((await alice.nextReply()).content).toBe('pong');
    expect(drops().get(reason)).toBe(before + 1);
    expect(bot().seen.length).toBe(seen);
  });
});
