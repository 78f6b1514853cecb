/**
 * The Docker image, checked without Docker: the steps are read from the Dockerfile itself
 * (test/support/dockerfile.ts) and carried out in a temporary directory (test/support/image-build.ts):
 * install, build, prune to production dependencies, then `relay-bot start` from the pruned tree as
 * the image's non-root user, on the image's Node line (from the npm registry), with only the
 * image's VOLUME writable; it must answer /ping. The config the image ships is used as the
 * container would be run (`docker run -e ...`): the broker and the SQLite path in the volume come
 * from the environment.
 *
 * The build takes a few minutes (npm ci, tsc), so it runs only with RELAY_TEST_IMAGE=1 (.ci/run),
 * and needs root (to run as the image's user).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { parseDockerfile, runSteps, DockerfileError } from '../support/dockerfile.js';
import { buildImage, type BuiltImage } from '../support/image-build.js';
import { answersMqtt5, uniqueName } from '../support/broker.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../framework/relay/index.js';
import { ROOT, tempDir } from '../cli/helpers.js';

const DOCKERFILE = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');

describe('reading the Dockerfile', () => {
  test('stages, instructions, continuation lines and COPY --from', () => {
    const stages = parseDockerfile(
      'FROM node:24-trixie AS build\n# comment\nWORKDIR /app\nRUN a \\\n && b\nCOPY x y ./\n' +
        'FROM node:24-trixie-slim\nENV NODE_ENV=production\nCOPY --from=build /app/dist ./dist\nUSER node\n' +
        'VOLUME ["/data"]\nENTRYPOINT ["relay-bot"]\nCMD ["start"]\n',
    );
    expect(stages.map((s) => [s.image, s.name])).toEqual([
      ['node:24-trixie', 'build'],
      ['node:24-trixie-slim', undefined],
    ]);
    expect(stages[0]!.instructions).toEqual([
      { op: 'WORKDIR', path: '/app' },
      { op: 'RUN', command: 'a   && b' },
      { op: 'COPY', sources: ['x', 'y'], dest: './' },
    ]);
    expect(stages[1]!.instructions).toEqual([
      { op: 'ENV', vars: { NODE_ENV: 'production' } },
      { op: 'COPY', from: 'build', sources: ['/app/dist'], dest: './dist' },
      { op: 'USER', user: 'node' },
      { op: 'VOLUME', paths: ['/data'] },
      { op: 'ENTRYPOINT', argv: ['relay-bot'] },
      { op: 'CMD', argv: ['start'] },
    ]);
    expect(runSteps('a   && b')).toEqual(['a', 'b']);
  });

  test('an instruction or shell form it cannot carry out is an error, not a skipped step', () => {
    expect(() => parseDockerfile('FROM node:24\nADD x /y\n')).toThrow(DockerfileError);
    expect(() => parseDockerfile('FROM node:24\nCMD relay-bot start\n')).toThrow(/exec form/);
    expect(() => runSteps('a; b')).toThrow(DockerfileError);
  });

  test("this project's Dockerfile reads: builds in one stage, runs from another as a user", () => {
    const stages = parseDockerfile(DOCKERFILE);
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const final = stages[stages.length - 1]!.instructions;
    expect(final.some((i) => i.op === 'USER' && i.user !== 'root')).toBe(true);
    expect(final.some((i) => i.op === 'VOLUME')).toBe(true);
  });
});

/**
 * scripts/node-line.sh: that Node from the registry and, where the store uses better-sqlite3 12 on
 * it, a prebuild of 12 for it (on Node-API 10 lines it prints none: 13 ships its binaries).
 */
function nodeLine(major: number): { nodeDir: string; env: Record<string, string> } {
  const out = execFileSync('bash', [path.join(ROOT, 'scripts', 'node-line.sh'), String(major)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const vars = Object.fromEntries(
    out
      .trim()
      .split('\n')
      .map((l) => {
        const i = l.indexOf('=');
        return [l.slice(0, i), l.slice(i + 1)];
      }),
  ) as Record<string, string | undefined>;
  return {
    nodeDir: vars.NODE_DIR!,
    env: {
      // prebuild-install takes the module compiled for this Node instead of downloading one;
      // without it node-gyp would compile with these headers (no download either).
      ...(vars.SQLITE_PREBUILDS ? { npm_config_better_sqlite3_local_prebuilds: vars.SQLITE_PREBUILDS } : {}),
      npm_config_nodedir: vars.NODE_DIR!,
    },
  };
}

function runAs(image: BuiltImage, args: string[], env: Record<string, string>): ChildProcess {
  return spawn(args[0]!, args.slice(1), {
    cwd: image.map(image.workdir),
    env: { ...image.env, HOME: image.map(image.workdir), ...env },
    uid: image.user.uid,
    gid: image.user.gid,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function finish(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

const enabled =
  process.env.RELAY_TEST_IMAGE === '1' && process.platform === 'linux' && process.getuid?.() === 0;

(enabled ? describe : describe.skip)('the image, built from the Dockerfile into a directory', () => {
  let tmp: { dir: string; remove(): Promise<void> };
  let image: BuiltImage;
  let broker: EmbeddedBroker | undefined;
  let bot: ChildProcess | undefined;
  let botOutput: Promise<{ code: number | null; stdout: string; stderr: string }>;
  let env: Record<string, string>;

  beforeAll(async () => {
    tmp = await tempDir('relay-image-');
    image = await buildImage({
      stages: parseDockerfile(DOCKERFILE),
      context: ROOT,
      into: tmp.dir,
      nodeFor: nodeLine,
      log: (l) => process.stderr.write(`image: ${l}\n`),
    });
    // What `docker run -e` would give: a broker (Mosquitto here, else an embedded one), the SQLite
    // file in the volume where the shipped config puts it, and a state key.
    let brokerUrl = 'mqtt://127.0.0.1:1883';
    if (!(await answersMqtt5(brokerUrl))) {
      broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0 });
      brokerUrl = broker.url;
    }
    env = {
      RELAY_BROKER_URL: brokerUrl,
      RELAY_TOPIC_PREFIX: uniqueName('image'),
      RELAY_STATE_KEY: randomBytes(32).toString('hex'),
      RELAY_LOG_LEVEL: 'warn',
    };
  }, 900_000);

  afterAll(async () => {
    if (bot && bot.exitCode === null) bot.kill('SIGKILL');
    await broker?.close();
    await tmp?.remove();
  }, 60_000);

  test('the shipped config keeps the SQLite file in the volume', () => {
    const config = image.argv[image.argv.indexOf('--config') + 1]!;
    const yaml = YAML.parse(readFileSync(config, 'utf8')) as { database?: { sqlitePath?: string } };
    const sqlitePath = yaml.database?.sqlitePath;
    expect(sqlitePath).toBeDefined();
    expect(image.volumes.some((v) => sqlitePath!.startsWith(`${v}/`))).toBe(true);
    env.RELAY_SQLITE_PATH = image.map(sqlitePath!);
  });

  test('only the volume is writable for the image user', async () => {
    const probe = `for (const d of process.argv.slice(1)) {
      try { require('fs').writeFileSync(d + '/.probe', 'x'); console.log(d, 'writable'); }
      catch (e) { console.log(d, e.code); } }`;
    const dirs = ['/app', '/config', '/usr/local/bin', ...image.volumes].map((d) => image.map(d));
    const r = await finish(runAs(image, [image.map('/usr/local/bin/node'), '-e', probe, ...dirs], {}));
    expect(r.stdout.trim().split('\n')).toEqual(
      dirs.map((d) => `${d} ${image.volumes.map((v) => image.map(v)).includes(d) ? 'writable' : 'EACCES'}`),
    );
  }, 60_000);

  test('relay-bot starts from the pruned tree as the image user and answers /ping', async () => {
    expect(image.user.uid).not.toBe(0);
    bot = runAs(image, image.argv, env);
    botOutput = finish(bot);
    let stdout = '';
    bot.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    const userId = await new Promise<string>((resolve, reject) => {
      bot!.stdout!.on('data', () => {
        const m = /user id: ([0-9a-f]{32})/.exec(stdout);
        if (m) resolve(m[1]!);
      });
      bot!.once(
        'exit',
        (code) => void botOutput.then((o) => reject(new Error(`start exited ${code}: ${o.stderr}`))),
      );
    });
    // The banner names the command that works in the image: the bin on PATH.
    expect(stdout).toContain(`  relay-bot chat ${userId}\n`);
    // The CLI's own identity: its default SQLite file under the working directory, the volume.
    const { RELAY_SQLITE_PATH: _botDb, ...clientEnv } = env;
    const send = await finish(
      runAs(image, [image.argv[0]!, 'send', userId, '/ping', '--wait', '60'], clientEnv),
    );
    expect(send.stdout).toBe('pong\n');
    expect(send.code).toBe(0);
  }, 180_000);

  test('SIGTERM stops it with exit 0', async () => {
    expect(bot).toBeDefined();
    bot!.kill('SIGTERM');
    const r = await botOutput;
    expect(r.code).toBe(0);
  }, 60_000);
});
