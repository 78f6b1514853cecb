/**
 * `relay-bot chat` in groups, end to end through a real broker (Mosquitto when it answers, else the
 * embedded one): the chat's session is driven line by line from a stream in this process, with
 * RelayClient peers beside it; then the real CLI as a subprocess creates a group, and opens it
 * again with --group.
 */
import { PassThrough, Writable } from 'node:stream';
import { runChat } from '../../cli/chat/run.js';
import {
  MemoryRelayStore,
  RelayClient,
  type GroupEvent,
  type ReceivedMessage,
} from '../../framework/relay/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { runCli, tempDir } from './helpers.js';

const POW_BITS = 8;
const short = (id: string): string => id.slice(0, 8);

interface Peer {
  client: RelayClient;
  messages: ReceivedMessage[];
  events: GroupEvent[];
}

let broker: TestBroker;
let prefix: string;
const peers: Peer[] = [];

async function peer(): Promise<Peer> {
  const client = await RelayClient.create({
    store: new MemoryRelayStore(),
    broker: { url: broker.url },
    topicPrefix: prefix,
    powBits: POW_BITS,
    groups: { commitDelayMs: 100 },
  });
  const p: Peer = { client, messages: [], events: [] };
  client.on('message', (m) => p.messages.push(m));
  client.on('group', (e) => p.events.push(e));
  await client.start();
  peers.push(p);
  return p;
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const end = Date.now() + 30_000;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const groupText = (p: Peer, groupId: string, text: string): ReceivedMessage | undefined =>
  p.messages.find(
    (m) =>
      m.conversation.kind === 'group' && m.conversation.groupId === groupId && m.content.content === text,
  );

/** A chat session fed from a stream, as `relay-bot chat` with piped input runs it. */
class ChatDriver {
  readonly lines: string[] = [];
  private readonly input = new PassThrough();
  private partial = '';
  readonly done: Promise<void>;

  constructor(client: RelayClient) {
    const output = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        const parts = (this.partial + chunk.toString()).split('\n');
        this.partial = parts.pop()!;
        this.lines.push(...parts);
        cb();
      },
    });
    this.done = runChat(client, { input: this.input, output, interactive: false }, { peers: [], drainMs: 0 });
  }

  type(line: string): void {
    this.input.write(`${line}\n`);
  }

  /** The first output line (from `from` on) matching `re`. */
  waitFor(re: RegExp, from = 0): Promise<RegExpExecArray> {
    return until(`chat output ${re}\n${this.lines.join('\n')}`, () => {
      for (const l of this.lines.slice(from)) {
        const m = re.exec(l);
        if (m) return m;
      }
      return undefined;
    });
  }

  async end(): Promise<void> {
    this.input.end();
    await this.done;
  }
}

beforeAll(async () => {
  broker = await getTestBroker();
});
beforeEach(() => {
  prefix = uniqueName('chat');
});
afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.client.stop().catch(() => undefined)));
});
afterAll(async () => {
  await broker.close();
});

test('chat: /group create, post, receive, /members, /invite, /remove, /groups, /leave', async () => {
  const [me, bob, carol] = [await peer(), await peer(), await peer()];
  const chat = new ChatDriver(me.client);

  chat.type(`/group create team ${bob.client.userId}`);
  const groupId = (await chat.waitFor(/^now in #team \(([0-9a-f]{64})\)$/))[1]!;
  expect(chat.lines).toContain(`created #team with 2 members, invited ${short(bob.client.userId)}`);
  await until('bob to join', () => bob.events.some((e) => e.kind === 'joined' && e.groupId === groupId));
  expect(bob.events.find((e) => e.kind === 'joined')).toMatchObject({ invitedBy: me.client.userId });

  // A plain line posts to the group; a line starting with // is sent with one slash less.
  chat.type('hello group');
  chat.type('//echo hi');
  const got = await until('bob to get the post', () => groupText(bob, groupId, 'hello group'));
  expect(got.from).toBe(me.client.userId);
  await until('bob to get /echo hi', () => groupText(bob, groupId, '/echo hi'));

  // Incoming group messages name the group and the sender.
  await bob.client.sendToGroup(groupId, 'hi from bob');
  await chat.waitFor(new RegExp(`^\\(\\d+\\) \\[#team ${short(bob.client.userId)}\\] hi from bob$`));

  let mark = chat.lines.length;
  chat.type('/members');
  await chat.waitFor(/^#team: 2 members, epoch \d+$/, mark);
  await chat.waitFor(new RegExp(`^  ${bob.client.userId}$`), mark);
  expect(chat.lines).toContain(`  ${me.client.userId} (you, committer)`);

  // /invite a third; the chat shows the membership change, carol joins and talks.
  mark = chat.lines.length;
  chat.type(`/invite ${carol.client.userId}`);
  await chat.waitFor(new RegExp(`^invited ${short(carol.client.userId)} to #team$`), mark);
  await chat.waitFor(new RegExp(`^\\* #team: added ${short(carol.client.userId)} \\(epoch \\d+\\)$`), mark);
  await until('carol to join', () => carol.events.some((e) => e.kind === 'joined' && e.groupId === groupId));
  await until('bob to see carol', () =>
    bob.events.some((e) => e.kind === 'members' && e.added.includes(carol.client.userId)),
  );
  await carol.client.sendToGroup(groupId, 'carol here');
  await chat.waitFor(new RegExp(`^\\(\\d+\\) \\[#team ${short(carol.client.userId)}\\] carol here$`));
  await until('bob to read carol', () => groupText(bob, groupId, 'carol here'));

  // /remove by a unique prefix of a member's id.
  mark = chat.lines.length;
  chat.type(`/remove ${short(carol.client.userId)}`);
  await chat.waitFor(new RegExp(`^removed ${short(carol.client.userId)} from #team$`), mark);
  await chat.waitFor(new RegExp(`^\\* #team: removed ${short(carol.client.userId)}`), mark);
  await until('carol to be removed', () =>
    carol.events.some((e) => e.kind === 'left' && e.groupId === groupId && e.reason === 'removed'),
  );
  expect(await carol.client.group(groupId)).toBeUndefined();

  mark = chat.lines.length;
  chat.type('/groups');
  await chat.waitFor(new RegExp(`^\\* 1\\. #team  ${groupId}  2 members$`), mark);

  // We are the committer: bob, at the next leaf, commits our Remove and becomes the committer.
  mark = chat.lines.length;
  chat.type('/leave');
  await chat.waitFor(/^leaving #team: done once a member commits it$/, mark);
  await chat.waitFor(/^\* you left #team$/, mark);
  await chat.waitFor(/^no current conversation: /, mark);
  const bobsView = await until('bob to be alone', async () => {
    const g = await bob.client.group(groupId);
    return g && g.members.length === 1 ? g : undefined;
  });
  expect(bobsView.isCommitter).toBe(true);
  expect(await me.client.groups()).toEqual([]);

  chat.type('anyone?');
  await chat.waitFor(/^not sent: no current conversation\. Fix: /);
  await chat.end();
  expect(chat.lines.filter((l) => l.startsWith('!'))).toEqual([]);
  expect(me.client.drops.get('mls')).toBe(0);
}, 120_000);

test('relay-bot chat (subprocess): /group create from a pipe, then --group <name> opens it again', async () => {
  const bob = await peer();
  bob.client.on('message', (m) => {
    if (m.conversation.kind === 'group' && m.content.content === 'back again') {
      void bob.client.sendToGroup(m.conversation.groupId, 'welcome back');
    }
  });
  const tmp = await tempDir('relay-chat-');
  const env = { RELAY_BROKER_URL: broker.url, RELAY_TOPIC_PREFIX: prefix, RELAY_POW_BITS: String(POW_BITS) };
  try {
    const created = await runCli(['chat', '--wait', '0'], {
      cwd: tmp.dir,
      env,
      input: `/group create crew ${bob.client.userId}\n`,
    });
    expect(created.stderr).not.toContain('relay-bot:');
    expect(created.code).toBe(0);
    const groupId = /^now in #crew \(([0-9a-f]{64})\)$/m.exec(created.stdout)?.[1];
    expect(groupId).toBeDefined();
    await until('bob to join', () => bob.events.some((e) => e.kind === 'joined' && e.groupId === groupId));
    // The inviter is the CLI's own identity, which `id --client` prints (and `id` is the bot's).
    const cliId = (await runCli(['id', '--client'], { cwd: tmp.dir, env })).stdout.trim();
    expect(bob.events.find((e) => e.kind === 'joined')).toMatchObject({ invitedBy: cliId });
    expect((await runCli(['id'], { cwd: tmp.dir, env })).stdout.trim()).not.toBe(cliId);

    const again = await runCli(['chat', '--group', 'crew', '--wait', '5'], {
      cwd: tmp.dir,
      env,
      input: 'back again\n',
    });
    expect(again.code).toBe(0);
    expect(groupText(bob, groupId!, 'back again')).toBeDefined();
    const lines = again.stdout.split('\n');
    expect(lines).toContain(`now in #crew (${groupId})`);
    expect(lines).toContainEqual(
      expect.stringMatching(new RegExp(`^\\(\\d+\\) \\[#crew ${short(bob.client.userId)}\\] welcome back$`)),
    );

    const missing = await runCli(['chat', '--group', 'nosuch'], { cwd: tmp.dir, env, input: '' });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--group: no group "nosuch" (you are in 1; /groups lists them)');
    expect(missing.stderr).toContain('Fix: give the id (or name) of a group this identity is in');
  } finally {
    await tmp.remove();
  }
}, 180_000);
