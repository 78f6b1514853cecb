/**
 * The CLI against real services through a config file: Mosquitto (127.0.0.1:1883) and Postgres
 * (a fresh schema). Skipped when either does not answer.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { answersMqtt5, uniqueName } from '../support/broker.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresAnswers } from '../support/postgres.js';
import { runCli, startBot, tempDir } from './helpers.js';

const MOSQUITTO = process.env.RELAY_TEST_BROKER_URL ?? 'mqtt://127.0.0.1:1883';
const available = (await answersMqtt5(MOSQUITTO)) && (await postgresAnswers());
const maybe = available ? describe : describe.skip;

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
});
