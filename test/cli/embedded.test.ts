/**
 * The CLI end to end on its defaults: embedded MQTT 5 broker on 127.0.0.1:1884 and SQLite files
 * under ./data of a temp working directory.
 */
import { RelayClient, MemoryRelayStore } from '../../framework/relay/index.js';
import { runCli, spawnCli, startBot, tempDir, type RunningBot } from './helpers.js';

const HEX32 = /^[0-9a-f]{32}\n$/;

describe('relay-bot on embedded defaults', () => {
  let tmp: { dir: string; remove(): Promise<void> };
  let bot: RunningBot | undefined;
  let idBeforeStart: string;

  beforeAll(async () => {
    tmp = await tempDir();
    const id = await runCli(['id'], { cwd: tmp.dir });
    expect(id.code).toBe(0);
    idBeforeStart = id.stdout;
    bot = await startBot([], { cwd: tmp.dir });
  }, 120_000);

  afterAll(async () => {
    if (bot) await bot.stop();
    await tmp.remove();
  }, 60_000);

  test('id prints only the 32-hex user id, the one start uses', async () => {
    expect(idBeforeStart).toMatch(HEX32);
    const again = await runCli(['id'], { cwd: tmp.dir });
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(idBeforeStart);
    expect(bot!.userId).toBe(idBeforeStart.trim());
    // The unencrypted-keys warning goes to stderr, never stdout.
    expect(again.stderr).toContain('RELAY_STATE_KEY is not set');
  }, 60_000);

  test('start prints how to talk to the bot, as run in a checkout (npm run relay-bot --)', () => {
    // The tests run the CLI from this checkout's source, where no relay-bot bin is linked.
    expect(bot!.stdout()).toContain(`  npm run relay-bot -- chat ${bot!.userId}\n`);
    expect(bot!.stdout()).toContain(`  npm run relay-bot -- send ${bot!.userId} /ping --wait 10\n`);
  });

  test("the bundle start publishes carries the bot's signed profile (its description and commands)", async () => {
    const peer = await RelayClient.create({
      store: new MemoryRelayStore(),
      broker: { url: 'mqtt://127.0.0.1:1884' },
      powWorkers: 0,
      powBits: 8,
    });
    await peer.start();
    try {
      const seen = await peer.verifyPeer(bot!.userId);
      expect(seen.profile).toEqual({
        bot: true,
        description: 'answers /ping and repeats what you /echo',
        commands: [
          { name: 'ping', description: 'answers pong' },
          { name: 'echo', args: '<text…>', description: 'repeats the text' },
          { name: 'help', args: '[command]', description: 'this list; /help <command> shows how to use one' },
        ],
      });
    } finally {
      await peer.stop();
    }
  }, 60_000);

  test('send /ping --wait 10 prints pong and exits 0', async () => {
    const r = await runCli(['send', bot!.userId, '/ping', '--wait', '10'], { cwd: tmp.dir });
    expect(r.stderr).not.toContain('relay-bot:');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toContain('pong');
  }, 90_000);

  test('send --wait returns after the first reply, not at the end of the wait', async () => {
    // Had it waited the full 600 s, runCli's 60 s limit would have killed it (signal SIGKILL).
    const r = await runCli(['send', bot!.userId, '/ping', '--wait', '600'], {
      cwd: tmp.dir,
      timeoutMs: 60_000,
    });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('pong\n');
  }, 90_000);

  test('send --wait --all keeps printing replies until the wait ends', async () => {
    // A peer that answers "one" at once and "two" only once the CLI has printed "one": without
    // --all the CLI would have returned after "one".
    const peer = await RelayClient.create({
      store: new MemoryRelayStore(),
      broker: { url: 'mqtt://127.0.0.1:1884' },
      powWorkers: 0,
      powBits: 8,
    });
    peer.setMessageHandler((_m, reply) => reply('one'));
    await peer.start();
    try {
      const child = spawnCli(['send', peer.userId, 'hello', '--wait', '12', '--all'], { cwd: tmp.dir });
      child.stdin!.end();
      let out = '';
      const sentTwo = new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          if (out === 'one\n') {
            peer
              .peers()
              .then(([cli]) => peer.send(cli!, 'two'))
              .then(() => resolve(), reject);
          }
        });
      });
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      await sentTwo;
      expect(code).toBe(0);
      expect(out).toBe('one\ntwo\n');
    } finally {
      await peer.stop();
    }
  }, 90_000);

  test('send --all without --wait exits 2', async () => {
    const r = await runCli(['send', bot!.userId, '/ping', '--all'], { cwd: tmp.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--all needs --wait');
  }, 60_000);

  test('send exits 1 when no reply comes', async () => {
    // A peer that never answers, on the same embedded broker.
    const silent = await RelayClient.create({
      store: new MemoryRelayStore(),
      broker: { url: 'mqtt://127.0.0.1:1884' },
      powWorkers: 0,
      powBits: 8,
    });
    await silent.start();
    try {
      const r = await runCli(['send', silent.userId, 'hello', '--wait', '2'], { cwd: tmp.dir });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain('no reply');
    } finally {
      await silent.stop();
    }
  }, 90_000);

  test('send with a malformed user id exits 2 naming the fix', async () => {
    const r = await runCli(['send', 'not-an-id', '/ping'], { cwd: tmp.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('relay-bot id');
  }, 60_000);

  test('send without the text exits 2', async () => {
    const r = await runCli(['send', bot!.userId], { cwd: tmp.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Not enough non-option arguments|text/);
  }, 60_000);

  test('chat driven through stdin exchanges messages with the echo bot', async () => {
    const r = await runCli(['chat', bot!.userId, '--wait', '5'], {
      cwd: tmp.dir,
      input: '/ping\n/echo first line\n/peers\n/echo second line\n',
    });
    expect(r.code).toBe(0);
    const short = bot!.userId.slice(0, 8);
    // Without the message numbers, "(n) ", the chat puts before each message.
    const lines = r.stdout.split('\n').map((l) => l.replace(/^\(\d+\) /, ''));
    expect(lines).toContain(`[${short}] pong`);
    expect(lines).toContain(`[${short}] first line`);
    expect(lines).toContain(`[${short}] second line`);
    expect(lines).toContain(`* 1. ${bot!.userId}`);
    // Replies come in the order the lines were sent.
    expect(lines.indexOf(`[${short}] first line`)).toBeLessThan(lines.indexOf(`[${short}] second line`));
  }, 90_000);

  test('SIGTERM stops start cleanly with exit 0', async () => {
    const code = await bot!.stop('SIGTERM');
    bot = undefined;
    expect(code).toBe(0);
  }, 60_000);
});
