/** What `keys`, `doctor` and `start` print must never include broker credentials. */
import { answersMqtt5 } from '../support/broker.js';
import { runCli, tempDir } from './helpers.js';

let tmp: { dir: string; remove(): Promise<void> };
beforeAll(async () => {
  tmp = await tempDir('relay-keys-secrets-');
  expect((await runCli(['id'], { cwd: tmp.dir })).code).toBe(0);
}, 60_000);
afterAll(() => tmp.remove());

const SECRET = 'hunter2-broker-secret';
// Port 1: nothing listens, so every command prints its failure path, which names the URL.
const URL_WITH_PASSWORD = `mqtt://relaybot:${SECRET}@127.0.0.1:1`;

test.each(['keys rotate', 'doctor', 'start'])(
  '%s never prints the broker password in the URL',
  async (command) => {
    const r = await runCli(command.split(' '), {
      cwd: tmp.dir,
      env: { RELAY_BROKER_URL: URL_WITH_PASSWORD },
    });
    expect(r.stdout + r.stderr).toContain('127.0.0.1:1');
    expect(r.stdout + r.stderr).not.toContain(SECRET);
  },
  60_000,
);

const MOSQUITTO = 'mqtt://127.0.0.1:1883';
const mosquittoUp = await answersMqtt5(MOSQUITTO);
if (!mosquittoUp) console.warn(`skipping the publish-path redaction test: no broker at ${MOSQUITTO}`);

(mosquittoUp ? test : test.skip)(
  'keys rotate names the broker it published to without the password',
  async () => {
    const r = await runCli(['keys', 'rotate'], {
      cwd: tmp.dir,
      env: { RELAY_BROKER_URL: `mqtt://relaybot:${SECRET}@127.0.0.1:1883` },
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/published to mqtt:\/\/relaybot:\*\*\*@127\.0\.0\.1:1883/);
    expect(r.stdout + r.stderr).not.toContain(SECRET);
  },
  60_000,
);
