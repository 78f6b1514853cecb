/**
 * Leaving `relay-bot chat` (the real CLI, piped stdin) while the broker does not answer: the chat
 * talks to the broker through a TCP proxy the test can stall (bytes stop flowing both ways, new
 * connections included), which is what a starved machine looks like to the client: a message is
 * committed to the outbox but its PUBACK never comes. /quit and SIGINT must still exit with code 0,
 * say that the message is kept, and the next chat start (straight to the broker) must deliver it.
 * Nothing here measures time: the only bound is a generous "it exits" wait.
 */
import net from 'node:net';
import { MemoryRelayStore, RelayClient, type ReceivedMessage } from '../../framework/relay/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { CliChat } from './cli-chat.js';
import { tempDir } from './helpers.js';

const POW_BITS = 8;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** How long a chat may take to exit after /quit here: far above the chat's own bound. */
const EXIT_WAIT_MS = 60_000;

/** A TCP proxy to the broker whose stall() makes it forward nothing more, on any connection. */
class StallingProxy {
  private stalled = false;
  /** Bytes the chat sent after stall(): a PUBLISH, which comes only after its outbox commit. */
  heldFromClient = 0;
  private readonly sockets = new Set<net.Socket>();
  private constructor(private readonly server: net.Server) {}

  static async start(target: string): Promise<StallingProxy> {
    const { hostname, port } = new URL(target);
    const server = net.createServer();
    const proxy = new StallingProxy(server);
    server.on('connection', (client) => {
      const upstream = net.connect(Number(port), hostname);
      for (const [from, to] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        proxy.sockets.add(from);
        from.on('data', (d: Buffer) => {
          if (!proxy.stalled) to.write(d);
          else if (from === client) proxy.heldFromClient += d.length;
        });
        from.on('error', () => undefined);
        from.on('close', () => to.destroy());
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  stall(): void {
    this.stalled = true;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

async function until(what: string, ok: () => boolean, ms: number, show = () => ''): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`never saw ${what}\n${show()}`);
    await sleep(25);
  }
}

let broker: TestBroker;
let prefix: string;
let peer: RelayClient | undefined;
let received: string[];
const chats: CliChat[] = [];

beforeAll(async () => {
  broker = await getTestBroker();
});
beforeEach(async () => {
  prefix = uniqueName('chat-quit');
  received = [];
  peer = await RelayClient.create({
    store: new MemoryRelayStore(),
    broker: { url: broker.url },
    topicPrefix: prefix,
    powBits: POW_BITS,
  });
  peer.on('message', (m: ReceivedMessage) => {
    if (m.content.type === 'text') received.push(String(m.content.content));
  });
  await peer.start();
});
afterEach(async () => {
  for (const c of chats.splice(0)) c.kill();
  await peer?.stop().catch(() => undefined);
});
afterAll(async () => {
  await broker.close();
});

/**
 * A chat through a stalled proxy with one message committed but not acknowledged, left by `leave`;
 * then a second chat straight to the broker, which must deliver it.
 */
async function leaveWhileStalled(leave: (chat: CliChat) => void): Promise<void> {
  const tmp = await tempDir('relay-chat-quit-');
  const proxy = await StallingProxy.start(broker.url);
  try {
    const chat = new CliChat([peer!.userId, '--wait', '0'], tmp.dir, {
      brokerUrl: proxy.url,
      prefix,
      powBits: POW_BITS,
    });
    chats.push(chat);
    // A first message while the broker answers: the session exists, so the next send needs no network.
    chat.type('first');
    await chat.waitFor(/^\(1\) sent$/);
    await until(
      'the first message at the peer',
      () => received.includes('first'),
      30_000,
      () => chat.output(),
    );

    proxy.stall();
    // Its "(2) sent" waits for the PUBACK, which never comes; a publish leaving means it is committed.
    chat.type('second');
    await until(
      'the publish of the second message',
      () => proxy.heldFromClient > 100,
      30_000,
      () => chat.output(),
    );
    leave(chat);
    expect(await chat.exitCode(EXIT_WAIT_MS)).toBe(0);
    expect(chat.lines.some((l) => /not yet acknowledged.*sent when .*chat.* starts again/.test(l))).toBe(
      true,
    );
    expect(chat.lines.some((l) => /^waiting .* for the broker to acknowledge 1 message/.test(l))).toBe(true);
    expect(received).not.toContain('second');

    // The next start publishes what the outbox kept.
    const again = new CliChat([peer!.userId, '--wait', '0'], tmp.dir, {
      brokerUrl: broker.url,
      prefix,
      powBits: POW_BITS,
    });
    chats.push(again);
    await until(
      'the kept message at the peer',
      () => received.includes('second'),
      30_000,
      () => again.output(),
    );
    again.type('/quit');
    expect(await again.exitCode(EXIT_WAIT_MS)).toBe(0);
    expect(received.filter((t) => t === 'second')).toHaveLength(1);
  } finally {
    await proxy.close();
    await tmp.remove();
  }
}

test('/quit exits while the broker does not acknowledge; the message goes out at the next start', async () => {
  await leaveWhileStalled((chat) => chat.type('/quit'));
}, 180_000);

test('SIGINT leaves like /quit: exit code 0, the message kept for the next start', async () => {
  await leaveWhileStalled((chat) => chat.signal('SIGINT'));
}, 180_000);
