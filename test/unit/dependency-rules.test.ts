/**
 * The dependency check (`npm run deps:check`, .dependency-cruiser.cjs) catches what it is there for:
 * run on a small tree that breaks each rule once, it names every break; on the same tree without
 * the breaks, it names none. The real tree is checked by `npm run lint`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

/** A package laid out like this one; `breaks` adds one import that each rule forbids. */
function tree(breaks: boolean): Record<string, string> {
  const clean: Record<string, string> = {
    'package.json': JSON.stringify({
      name: 'fixture',
      type: 'module',
      devDependencies: { 'fast-check': '*' },
    }),
    'tsconfig.json': JSON.stringify({
      compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext' },
    }),
    'framework/relay/index.ts': "export * from './envelope.js';\n",
    'framework/relay/envelope.ts': 'export const envelope = 1;\n',
    'framework/store/index.ts':
      "import { envelope } from '../relay/index.js';\nexport const store = envelope;\n",
    'framework/store/leaf.ts': 'export const storeLeaf = 1;\n',
    'framework/bot/index.ts': "import { envelope } from '../relay/index.js';\nexport const bot = envelope;\n",
    'framework/bot/inner.ts': 'export const inner = 1;\n',
    'framework/testing/index.ts':
      "export { bot } from '../bot/index.js';\nexport { store } from '../store/index.js';\n",
    'plugins/index.ts': "export { bot as plugin } from '../framework/bot/index.js';\n",
    'bots/echo/index.ts': "export { bot } from '../../index.js';\n",
    'cli/main.ts':
      "export { bot } from '../index.js';\nexport { store } from '../framework/store/index.js';\n",
    'index.ts': "export * from './framework/bot/index.js';\nexport * from './plugins/index.js';\n",
  };
  if (!breaks) return clean;
  return {
    ...clean,
    'framework/relay/up.ts': "export { storeLeaf } from '../store/leaf.js';\n",
    'framework/relay/ring-a.ts': "import { b } from './ring-b.js';\nexport const a = () => b;\n",
    'framework/relay/ring-b.ts': "import { a } from './ring-a.js';\nexport const b = () => a;\n",
    'framework/store/up.ts': "export { inner } from '../bot/inner.js';\n",
    'framework/bot/up.ts':
      "export { storeLeaf } from '../store/leaf.js';\nexport { envelope } from '../relay/envelope.js';\n",
    'plugins/deep.ts': "export { inner } from '../framework/bot/inner.js';\n",
    'bots/echo/other.ts': "export { plugin } from '../../plugins/index.js';\n",
    'cli/bot.ts':
      "export { bot } from '../framework/bot/index.js';\nimport fc from 'fast-check';\nexport { fc };\n",
  };
}

async function violations(breaks: boolean): Promise<string[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'relay-deps-'));
  try {
    for (const [rel, text] of Object.entries(tree(breaks))) {
      await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
      await writeFile(path.join(dir, rel), text);
    }
    await mkdir(path.join(dir, 'node_modules', 'fast-check'), { recursive: true });
    await writeFile(
      path.join(dir, 'node_modules', 'fast-check', 'package.json'),
      JSON.stringify({ name: 'fast-check', version: '1.0.0', main: 'index.js' }),
    );
    await writeFile(path.join(dir, 'node_modules', 'fast-check', 'index.js'), 'module.exports = 1;\n');
    const run = spawnSync(
      path.join(ROOT, 'node_modules', '.bin', 'depcruise'),
      [
        'index.ts',
        'framework',
        'cli',
        'plugins',
        'bots',
        '--config',
        path.join(ROOT, '.dependency-cruiser.cjs'),
      ].concat(['--output-type', 'json']),
      { cwd: dir, encoding: 'utf8' },
    );
    const result = JSON.parse(run.stdout) as {
      summary: { violations: Array<{ from: string; to: string; rule: { name: string } }> };
    };
    return result.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`).sort();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('each rule names the import that breaks it', async () => {
  expect(await violations(true)).toEqual(
    [
      'relay-is-the-bottom: framework/relay/up.ts → framework/store/leaf.ts',
      'no-circular: framework/relay/ring-a.ts → framework/relay/ring-b.ts',
      'store-above-relay-only: framework/store/up.ts → framework/bot/inner.ts',
      'bot-above-relay-only: framework/bot/up.ts → framework/store/leaf.ts',
      'bot-knows-no-protocol-internals: framework/bot/up.ts → framework/relay/envelope.ts',
      'user-code-uses-entry-points: plugins/deep.ts → framework/bot/inner.ts',
      'bots-use-the-root: bots/echo/other.ts → plugins/index.ts',
      'cli-gets-the-bot-layer-from-the-root: cli/bot.ts → framework/bot/index.ts',
      'no-dev-dependencies-at-run-time: cli/bot.ts → node_modules/fast-check/index.js',
    ].sort(),
  );
}, 60_000);

test('the same tree without the breaks passes', async () => {
  expect(await violations(false)).toEqual([]);
}, 60_000);
