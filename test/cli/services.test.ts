/**
 * The CLI against real services through a config file: Mosquitto (127.0.0.1:1883) and Postgres
 * (a fresh schema). Skipped when either does not answer.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MemoryRelayStore, RelayClient, type ReceivedMessage } from '../../framework/relay/index.js';
import { answersMqtt5, uniqueName } from '../support/broker.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresAnswers } from '../support/postgres.js';
import { runCli, startBot, tempDir } from './helpers.js';

const MOSQUITTO = process.env.RELAY_TEST_BROKER_URL ?? 'mqtt://127.0.0.1:1883';
const available = (await answersMqtt5(MOSQUITTO)) && (await postgresAnswers());
const maybe = available ? describe : describe.skip;
if (!available) console.warn('skipping the CLI services tests: Mosquitto or Postgres does not answer');

maybe('relay-bot with Mosquitto and Postgres from a config file', () => {
  test('start, then send /ping --wait 10 prints pong; the bot state is in Postgres', async () => {
    const tmp = await tempDir();
    const schema = uniqueName('cli').replace(/-/g, '_');
    await createPgSchema(schema);
    const config = path.join(tmp.dir, 'bot.yaml');
    await writeFile(
      config,
      [
        'broker:',
        `  url: ${MOSQUITTO}`,
        'database:',
        `  url: ${PG_URL}`,
        `  schema: ${schema}`,
        `topicPrefix: ${uniqueName('clitest')}`,
        'powBits: 12',
        '',
      ].join('\n'),
    );
    const bot = await startBot(['--config', config], { cwd: tmp.dir });
    try {
      const id = await runCli(['id', '--config', config], { cwd: tmp.dir });
      expect(id.stdout.trim()).toBe(bot.userId);
      const r = await runCli(['send', bot.userId, '/ping', '--wait', '10', '--config', config], {
        cwd: tmp.dir,
      });
      expect(r.code).toBe(0);
      expect(r.stdout.split('\n')).toContain('pong');
      const doctor = await runCli(['doctor', '--config', config], { cwd: tmp.dir });
      expect(doctor.stdout).toMatch(/^ok +broker:/m);
      expect(doctor.stdout).toMatch(/^ok +key bundle: retained bundle is ours/m);
      expect(doctor.stdout).not.toContain('FAIL');
      expect(doctor.code).toBe(0);
    } finally {
      expect(await bot.stop()).toBe(0);
      await dropPgSchema(schema);
      await tmp.remove();
    }
  }, 180_000);

  test('the echo bot answers /ping from an independent RelayClient and keeps answering across SIGKILL', async () => {
    const tmp = await tempDir();
    const schema = uniqueName('cli').replace(/-/g, '_');
    await createPgSchema(schema);
    const prefix = uniqueName('clikill');
    const config = path.join(tmp.dir, 'bot.yaml');
    await writeFile(
      config,
      ['broker:', `  url: ${MOSQUITTO}`, 'database:', `  url: ${PG_URL}`, `  schema: ${schema}`]
        .concat([`topicPrefix: ${prefix}`, 'powBits: 12', ''])
        .join('\n'),
    );
    let bot = await startBot(['--config', config], { cwd: tmp.dir });
    const alice = await RelayClient.create({
      store: new MemoryRelayStore(),
      broker: { url: MOSQUITTO },
      topicPrefix: prefix,
    });
    const replies: ReceivedMessage[] = [];
    alice.on('message', (m) => replies.push(m));
    await alice.start();
    const waitFor = async (n: number) => {
      for (let i = 0; i < 600 && replies.length < n; i++) await new Promise((r) => setTimeout(r, 50));
      expect(replies.length).toBe(n);
    };
    try {
      await alice.send(bot.userId, '/ping');
      await waitFor(1);
      expect(replies[0]!.content.content).toBe('pong');
      const botId = bot.userId;
      await bot.stop('SIGKILL');
      // Sent while the bot is dead: its persistent MQTT session holds it.
      await alice.send(botId, '/echo while you were down');
      bot = await startBot(['--config', config], { cwd: tmp.dir });
      expect(bot.userId).toBe(botId);
      await waitFor(2);
      expect(replies[1]!.content.content).toBe('while you were down');
      await alice.send(botId, '/ping');
      await waitFor(3);
      expect(replies[2]!.content.content).toBe('pong');
    } finally {
      await alice.stop();
      await bot.stop();
      await dropPgSchema(schema);
      await tmp.remove();
    }
  }, 180_000);
});
