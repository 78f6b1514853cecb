/**
 * `relay-bot init [dir]`: scaffolds a bot project: package.json, tsconfig.json, a bot class,
 * bot.yaml, a Dockerfile and a first test on createTestHarness ('relay-bot/testing'). The bot
 * imports from the package root ('relay-bot') only.
 * With RELAY_BOT_LOCAL set, the project depends on this checkout through a file: path, or, when it
 * names a .tgz (from `npm pack`), on that tarball.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Argv } from 'yargs';
import { UsageError } from '../errors.js';

export interface InitArgs {
  dir?: string;
  force?: boolean;
}

export const command = 'init [dir]';
export const describe = 'Scaffold a bot project';
export const builder = (y: Argv): Argv<InitArgs> =>
  y
    .positional('dir', { type: 'string', default: '.', describe: 'where to create it' })
    .option('force', { type: 'boolean', describe: 'write into a non-empty directory' }) as Argv<InitArgs>;

/** This package's root: the nearest package.json named relay-bot above this file. */
export function packageRoot(): { root: string; version: string } {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (existsSync(pj)) {
      const pkg = JSON.parse(readFileSync(pj, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'relay-bot') return { root: dir, version: pkg.version ?? '0.0.0' };
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the relay-bot package.json');
    dir = up;
  }
}

function classNameFor(project: string): { cls: string; bot: string } {
  const words = project.split(/[^A-Za-z0-9]+/).filter(Boolean);
  const pascal = words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('') || 'My';
  const base = /^[A-Za-z]/.test(pascal) ? pascal : `Bot${pascal}`;
  const cls = base.endsWith('Bot') ? base : `${base}Bot`;
  return { cls, bot: cls.slice(0, 64) };
}

export function scaffold(project: string, dependency: string): Record<string, string> {
  const { cls, bot } = classNameFor(project);
  const pkgName =
    project
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'my-bot';
  return {
    'package.json': `${JSON.stringify(
      {
        name: pkgName,
        version: '0.1.0',
        private: true,
        type: 'module',
        scripts: {
          build: 'tsc',
          start: 'tsc && relay-bot start --config bot.yaml',
          test: 'node --import tsx --test test/*.test.ts',
        },
        dependencies: { 'relay-bot': dependency },
        devDependencies: { '@types/node': '^20.19.0', tsx: '^4.23.0', typescript: '5.9.3' },
        engines: { node: '^20.19.0 || ^22.14.0 || ^24.11.0 || ^26.10.0' },
      },
      null,
      2,
    )}\n`,
    'tsconfig.json': `${JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          experimentalDecorators: true,
          skipLibCheck: true,
          outDir: 'dist',
          rootDir: 'src',
        },
        include: ['src'],
      },
      null,
      2,
    )}\n`,
    'src/bot.ts': `import { Bot, OnCommand, type BotContext } from 'relay-bot';

@Bot({ name: '${bot}', description: 'a Relay bot' })
export class ${cls} {
  @OnCommand('ping', { description: 'answers pong' })
  ping(): string {
    return 'pong';
  }

  @OnCommand('hello', { description: 'greets you', args: '[name]' })
  hello(ctx: BotContext<{ name?: string }>): string {
    return \`hello \${ctx.args.name ?? 'there'}\`;
  }
}
`,
    'test/bot.test.ts': `import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTestHarness } from 'relay-bot/testing';
import { ${cls} } from '../src/bot.js';

test('/ping answers pong, end to end through a real broker', async () => {
  const harness = await createTestHarness(${cls});
  try {
    const alice = await harness.peer();
    await alice.send('/ping');
    assert.equal((await alice.nextReply()).content, 'pong');
  } finally {
    await harness.close();
  }
});
`,
    'bot.yaml': `# relay-bot start --config bot.yaml  (run \`npm run build\` first: the module is the compiled file)
# Without broker.url the CLI runs an embedded MQTT 5 broker on 127.0.0.1:1884 (development only);
# without database.url, SQLite in ./data. Set RELAY_STATE_KEY to encrypt keys at rest.
bot:
  module: ./dist/bot.js
# broker:
#   url: mqtt://127.0.0.1:1883
# database:
#   url: postgres://user:password@127.0.0.1:5432/bots
logging:
  level: info
`,
    // Node 24 loads better-sqlite3 13, whose npm package carries prebuilt binaries; the install
    // scripts would only compile better-sqlite3 12, which nothing loads there: no compiler needed.
    Dockerfile: `FROM node:24-trixie-slim AS build
WORKDIR /app
COPY package*.json ./
RUN npm install --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-trixie-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app /app
RUN mkdir -p /app/data && chown node:node /app/data
USER node
CMD ["npx", "relay-bot", "start", "--config", "bot.yaml"]
`,
    '.gitignore': 'node_modules/\ndist/\ndata/\n',
  };
}

export async function handler(argv: InitArgs): Promise<void> {
  const dir = path.resolve(argv.dir ?? '.');
  if (existsSync(dir) && readdirSync(dir).length > 0 && !argv.force) {
    throw new UsageError(`${dir} is not empty. Fix: pick a new directory, or pass --force to write into it`);
  }
  const { root, version } = packageRoot();
  const local = process.env.RELAY_BOT_LOCAL;
  const dependency = !local
    ? `^${version}`
    : local.endsWith('.tgz')
      ? `file:${path.resolve(local)}`
      : `file:${root}`;
  const files = scaffold(path.basename(dir), dependency);
  for (const [rel, text] of Object.entries(files)) {
    const target = path.join(dir, rel);
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, text);
  }
  process.stdout.write(
    [
      `created ${Object.keys(files).length} files in ${dir}`,
      `  cd ${path.relative(process.cwd(), dir) || '.'} && npm install && npm test && npm start`,
      '',
    ].join('\n'),
  );
}
