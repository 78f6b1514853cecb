/**
 * deploy/: the shipped Mosquitto configuration and ACL, run for real on a spare port (Docker does not
 * run here), and the commands the Dockerfile and docker-compose.yml run against the README.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { connect, type MqttClient } from 'mqtt';
import YAML from 'yaml';
import { freePort } from '../support/host.js';
import { answersMqtt5 } from '../support/broker.js';
import { ROOT, tempDir } from './helpers.js';

const read = (rel: string): string => readFileSync(path.join(ROOT, rel), 'utf8');
const hasMosquitto = (() => {
  try {
    execFileSync('mosquitto_passwd', ['-h'], { stdio: 'ignore' });
  } catch (e) {
    // mosquitto_passwd -h exits non-zero but exists.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
  }
  try {
    execFileSync('mosquitto', ['-h'], { stdio: 'ignore' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
  }
  return true;
})();

/** deploy/mosquitto/mosquitto.conf with only the port and the file locations changed. */
function adaptConfig(conf: string, port: number, dir: string): string {
  // Started as root, Mosquitto drops to the `mosquitto` user, which cannot use the temp dir.
  const asRoot = process.getuid?.() === 0 ? ['user root'] : [];
  return [...asRoot, conf]
    .join('\n')
    .split('\n')
    .map((line) => {
      const [key] = line.trim().split(/\s+/);
      switch (key) {
        case 'listener':
          return `listener ${port} 127.0.0.1`;
        case 'password_file':
          return `password_file ${path.join(dir, 'passwd')}`;
        case 'acl_file':
          return `acl_file ${path.join(dir, 'acl')}`;
        case 'persistence_location':
          return `persistence_location ${dir}/`;
        case 'log_dest':
          return `log_dest file ${path.join(dir, 'mosquitto.log')}`;
        default:
          return line;
      }
    })
    .join('\n');
}

const maybe = hasMosquitto ? describe : describe.skip;

maybe('deploy/mosquitto: the ACL', () => {
  const A = randomBytes(16).toString('hex');
  const B = randomBytes(16).toString('hex');
  const PASS = { [A]: 'pass-a', [B]: 'pass-b' };
  let broker: ChildProcess;
  let url: string;
  let tmp: { dir: string; remove(): Promise<void> };
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    tmp = await tempDir('relay-acl-');
    const port = await freePort();
    url = `mqtt://127.0.0.1:${port}`;
    await writeFile(
      path.join(tmp.dir, 'mosquitto.conf'),
      adaptConfig(read('deploy/mosquitto/mosquitto.conf'), port, tmp.dir),
    );
    await writeFile(path.join(tmp.dir, 'acl'), read('deploy/mosquitto/acl'));
    const passwd = path.join(tmp.dir, 'passwd');
    execFileSync('mosquitto_passwd', ['-c', '-b', passwd, A, PASS[A]!]);
    execFileSync('mosquitto_passwd', ['-b', passwd, B, PASS[B]!]);
    broker = spawn('mosquitto', ['-c', path.join(tmp.dir, 'mosquitto.conf')], { stdio: 'ignore' });
    for (let i = 0; i < 50; i++) {
      // Anonymous logins are refused, so probe for the port by a refused CONNECT turning into a real one.
      const probe = await login(A).then(
        (c) => {
          void c.endAsync();
          return true;
        },
        () => false,
      );
      if (probe) return;
      if (broker.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`mosquitto did not start: ${readLog()}`);
  }, 30_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    if (broker && broker.exitCode === null) {
      const exited = new Promise((r) => broker.once('exit', r));
      broker.kill('SIGTERM');
      await exited;
    }
    await tmp.remove();
  });

  function readLog(): string {
    const log = path.join(tmp.dir, 'mosquitto.log');
    return existsSync(log) ? readFileSync(log, 'utf8') : '';
  }

  function login(user: string, password = PASS[user]): Promise<MqttClient> {
    return new Promise((resolve, reject) => {
      const c = connect(url, {
        protocolVersion: 5,
        username: user,
        ...(password !== undefined ? { password } : {}),
        clientId: `acl-${randomBytes(4).toString('hex')}`,
        reconnectPeriod: 0,
        connectTimeout: 2000,
      });
      c.once('connect', () => {
        clients.push(c);
        resolve(c);
      });
      c.once('error', (e) => {
        c.end(true);
        reject(e);
      });
      c.once('close', () => reject(new Error('closed')));
    });
  }

  /** Messages on `topic` as seen by `c` within `ms`. */
  async function collect(c: MqttClient, topic: string, during: () => Promise<unknown>, ms = 700) {
    const got: string[] = [];
    const on = (t: string, p: Buffer): void => {
      if (t === topic) got.push(p.toString());
    };
    c.on('message', on);
    const granted = await c.subscribeAsync(topic, { qos: 1 });
    await during();
    await new Promise((r) => setTimeout(r, ms));
    c.off('message', on);
    await c.unsubscribeAsync(topic);
    return { got, granted: granted[0]?.qos };
  }

  /** Publishes at QoS 1; Mosquitto 2.0 acknowledges a refused publish too and drops it. */
  async function publish(c: MqttClient, topic: string, payload: string, retain = false): Promise<void> {
    await c.publishAsync(topic, payload, { qos: 1, retain }).catch(() => undefined);
  }

  test('passwords are required', async () => {
    await expect(login(A, 'wrong')).rejects.toThrow();
    await expect(login(`${A}x`, undefined)).rejects.toThrow();
  });

  test('user A cannot publish to user B’s keys topic, but can to its own', async () => {
    const a = await login(A);
    const b = await login(B);
    const theirs = await collect(b, `relay/u/${B}/keys`, () => publish(a, `relay/u/${B}/keys`, 'forged'));
    expect(theirs.got).toEqual([]);
    const ours = await collect(b, `relay/u/${A}/keys`, () => publish(a, `relay/u/${A}/keys`, 'bundle-a'));
    expect(ours.got).toEqual(['bundle-a']);
  });

  test('a forged retained bundle is not stored either', async () => {
    const a = await login(A);
    const b = await login(B);
    await publish(b, `relay/u/${B}/keys`, 'bundle-b', true);
    await publish(a, `relay/u/${B}/keys`, 'forged', true);
    const seen = await collect(a, `relay/u/${B}/keys`, async () => undefined);
    expect(seen.got).toEqual(['bundle-b']);
  });

  test('anyone can write an inbox, only the owner reads it', async () => {
    const a = await login(A);
    const b = await login(B);
    const own = await collect(b, `relay/u/${B}/inbox`, () => publish(a, `relay/u/${B}/inbox`, 'hi b'));
    expect(own.got).toEqual(['hi b']);
    const snoop = await collect(a, `relay/u/${B}/inbox`, () => publish(b, `relay/u/${B}/inbox`, 'private'));
    // Mosquitto 2.0 grants the subscription and filters on delivery; either way nothing arrives.
    expect(snoop.got).toEqual([]);
  });

  test('the shared test broker is not disturbed', async () => {
    // The private broker listens on its own port only.
    expect(url).not.toContain(':1883');
    expect(await answersMqtt5(url, 1000)).toBe(false); // anonymous CONNECT refused
  });
});

describe('Dockerfile, docker-compose.yml and README agree', () => {
  const START = 'relay-bot start --config /config/bot.yaml';
  const dockerfile = read('Dockerfile');
  const compose = YAML.parse(read('docker-compose.yml')) as {
    services: Record<string, { command?: string[]; build?: unknown; volumes?: string[]; image?: string }>;
  };
  const readme = read('README.md');

  /** The exec-form JSON array of the last instruction `name` in the final stage. */
  function instruction(name: string): string[] {
    const lines = dockerfile.split('\n').filter((l) => l.startsWith(`${name} `));
    const last = lines[lines.length - 1];
    if (!last) throw new Error(`no ${name} in the Dockerfile`);
    return JSON.parse(last.slice(name.length + 1)) as string[];
  }

  test('the image runs relay-bot start --config /config/bot.yaml, as the README says', () => {
    const run = [...instruction('ENTRYPOINT'), ...instruction('CMD')].join(' ');
    expect(run).toBe(START);
    expect(readme).toContain(START);
  });

  test('the compose echo bot runs the same command, built from this Dockerfile', () => {
    const bot = compose.services['echo-bot']!;
    expect(bot.build).toBe('.');
    expect(['relay-bot', ...(bot.command ?? [])].join(' ')).toBe(START);
  });

  test('the image ships the config it is started with and runs as a non-root user', () => {
    expect(dockerfile).toMatch(/^COPY deploy\/bot\.yaml \/config\/bot\.yaml$/m);
    expect(existsSync(path.join(ROOT, 'deploy', 'bot.yaml'))).toBe(true);
    expect(dockerfile).toMatch(/^USER node$/m);
    // A maintained LTS line (not the end-of-life 20), the same Debian release in both stages so the
    // compiled better-sqlite3 loads, and a -slim runtime.
    const froms = [...dockerfile.matchAll(/^FROM node:(\d+)-([a-z]+)(-slim)?\b/gm)];
    expect(froms.length).toBe(2);
    expect(Number(froms[0]![1])).toBeGreaterThanOrEqual(22);
    expect(Number(froms[0]![1]) % 2).toBe(0);
    expect(froms[1]![1]).toBe(froms[0]![1]);
    expect(froms[1]![2]).toBe(froms[0]![2]);
    expect(froms[1]![3]).toBe('-slim');
  });

  test('the build stage copies every source the build compiles (tsconfig.build.json include)', () => {
    const include = (JSON.parse(read('tsconfig.build.json')) as { include: string[] }).include;
    const copied = dockerfile
      .split('\n')
      .filter((l) => l.startsWith('COPY ') && !l.includes('--from='))
      .flatMap((l) => l.slice('COPY '.length).trim().split(/\s+/).slice(0, -1));
    for (const source of [...include, 'tsconfig.json', 'tsconfig.build.json'])
      expect(copied).toContain(source);
  });

  test('compose mounts the deploy/mosquitto files that exist, and runs postgres', () => {
    const mounts = (compose.services.mosquitto!.volumes ?? []).filter((v) => v.startsWith('./'));
    expect(mounts.length).toBeGreaterThanOrEqual(2);
    for (const m of mounts) expect(existsSync(path.join(ROOT, m.split(':')[0]!))).toBe(true);
    expect(compose.services.postgres!.image).toMatch(/^postgres:/);
  });

  test('every relay-bot command the README shows exists in the CLI', () => {
    const shown = [...readme.matchAll(/relay-bot ([a-z]+)/g)].map((m) => m[1]!);
    const known = ['start', 'id', 'send', 'chat', 'init', 'keys', 'migrate', 'doctor'];
    const commands = shown.filter((w) => !['bot', 'is', 'on'].includes(w));
    expect(commands.length).toBeGreaterThan(0);
    for (const c of commands) expect(known).toContain(c);
  });
});
