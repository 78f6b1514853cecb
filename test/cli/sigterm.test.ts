/**
 * SIGTERM under load loses nothing: a client sends many commands, the bot is stopped with SIGTERM
 * half-way and started again; every command gets exactly one reply. Uses Mosquitto at
 * 127.0.0.1:1883 when it answers, else an embedded broker in this process (the bot's own embedded
 * broker would take the queued messages down with it).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MemoryRelayStore, RelayClient } from '../../framework/relay/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { startBot, tempDir, type RunningBot } from './helpers.js';

const N = 60;

test('SIGTERM under load: every message is answered exactly once across the restart', async () => {
  const broker: TestBroker = await getTestBroker();
  const tmp = await tempDir();
  const prefix = uniqueName('sigterm');
  const config = path.join(tmp.dir, 'bot.yaml');
  await writeFile(
    config,
    [`broker:`, `  url: ${broker.url}`, `topicPrefix: ${prefix}`, 'powBits: 8', ''].join('\n'),
  );
  let bot: RunningBot | undefined = await startBot(['--config', config], { cwd: tmp.dir });
  const botId = bot.userId;
  const sender = await RelayClient.create({
    store: new MemoryRelayStore(),
    broker: { url: broker.url },
    topicPrefix: prefix,
    powBits: 8,
    powWorkers: 0,
  });
  const replies: string[] = [];
  let onReply: (() => void) | undefined;
  sender.on('message', (m) => {
    replies.push(m.content.content);
    onReply?.();
  });
  const until = (pred: () => boolean, ms: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out with ${replies.length} replies`)), ms);
      const check = (): void => {
        if (pred()) {
          clearTimeout(timer);
          onReply = undefined;
          resolve();
        }
      };
      onReply = check;
      check();
    });
  try {
    await sender.start();
    await sender.send(botId, '/echo m0');
    await until(() => replies.length >= 1, 30_000);
    // The load: sent without waiting for replies. SIGTERM lands while they are being handled,
    // more arrive while the bot shuts down, and more while it is down.
    let next = 1;
    const burst = (count: number): Promise<unknown> =>
      Promise.all(Array.from({ length: count }, () => sender.send(botId, `/echo m${next++}`)));
    const first = burst(30);
    await until(() => replies.length >= 5, 30_000);
    const stopped = bot.stop('SIGTERM');
    const during = burst(20);
    expect(await stopped).toBe(0);
    await Promise.all([first, during]);
    await burst(N - next);
    const answeredBeforeRestart = replies.length;
    bot = await startBot(['--config', config], { cwd: tmp.dir });
    expect(bot.userId).toBe(botId);
    await until(() => replies.length >= N, 90_000);
    // A little longer, to catch duplicates arriving late.
    await new Promise((r) => setTimeout(r, 1500));
    expect(answeredBeforeRestart).toBeLessThan(N);
    const expected = Array.from({ length: N }, (_, i) => `m${i}`);
    expect([...replies].sort()).toEqual([...expected].sort());
  } finally {
    await sender.stop();
    if (bot) await bot.stop();
    await tmp.remove();
    await broker.close();
  }
}, 240_000);
