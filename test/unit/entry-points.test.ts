/**
 * The package's entry points: package.json "exports" (what an installed package resolves), the
 * tsconfig "paths" and jest mapper (what the tests resolve) name the same sources, and the root
 * gives a bot author what the README uses, errors included, as one hierarchy.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import * as root from 'relay-bot';
import * as plugins from 'relay-bot/plugins';
import * as relay from 'relay-bot/relay';
import * as store from 'relay-bot/store';
import * as testing from 'relay-bot/testing';

const ROOT = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const jestConfig = (
  (await import(pathToFileURL(path.join(ROOT, 'jest.config.js')).href)) as {
    default: { moduleNameMapper: Record<string, string> };
  }
).default;
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  main: string;
  types: string;
  exports: Record<string, string>;
};
const tsconfig = ts.readConfigFile(path.join(ROOT, 'tsconfig.json'), ts.sys.readFile).config as {
  compilerOptions: { paths: Record<string, string[]> };
};

/** `./dist/x/index.js` → `x/index.ts`: the source an export's build comes from. */
const sourceOf = (dist: string) => path.normalize(dist.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts'));

const entries = Object.entries(pkg.exports).filter(([k]) => k !== './package.json');

test('exports name the root and the four expert subpaths, none mirroring a folder', () => {
  expect(entries.map(([k]) => k).sort()).toEqual(['.', './plugins', './relay', './store', './testing']);
  expect(pkg.exports['.']).toBe(`./${pkg.main}`);
  expect(pkg.types).toBe(pkg.main.replace(/\.js$/, '.d.ts'));
  for (const [, dist] of entries) expect(existsSync(path.join(ROOT, sourceOf(dist)))).toBe(true);
});

test('tsconfig paths and the jest mapper resolve each entry point to the source its export builds', () => {
  const mapper = Object.entries(jestConfig.moduleNameMapper);
  for (const [sub, dist] of entries) {
    const name = sub === '.' ? 'relay-bot' : `relay-bot/${sub.slice(2)}`;
    expect(tsconfig.compilerOptions.paths[name]?.map((p) => path.normalize(p))).toEqual([sourceOf(dist)]);
    const hit = mapper.find(([re]) => new RegExp(re).test(name));
    expect(hit).toBeDefined();
    const target = name.replace(new RegExp(hit![0]), hit![1]).replace('<rootDir>/', '');
    expect(path.normalize(target)).toBe(sourceOf(dist));
  }
  expect(Object.keys(tsconfig.compilerOptions.paths).length).toBe(entries.length);
});

test('the root has what a bot author uses, including the plugins and the factories', () => {
  for (const name of [
    'Bot',
    'OnCommand',
    'OnMessage',
    'OnJoin',
    'OnLeave',
    'OnMembers',
    'OnError',
    'BotRuntime',
    'Composer',
    'createRelayClient',
    'createRelayStore',
    'TOMBSTONE',
  ]) {
    expect(root).toHaveProperty(name);
  }
  for (const name of Object.keys(plugins)) {
    expect((root as Record<string, unknown>)[name]).toBe((plugins as Record<string, unknown>)[name]);
  }
  // The same objects as the expert entries, not copies.
  expect(root.createRelayClient).toBe(relay.createRelayClient);
  expect(root.createRelayStore).toBe(store.createRelayStore);
  expect(typeof testing.createTestHarness).toBe('function');
});

test('every error class the entries export is a RelayError with a code, exported from the root', () => {
  const errorClasses = [root, relay, store, plugins]
    .flatMap((m) => Object.entries(m as Record<string, unknown>))
    .filter(([, v]) => typeof v === 'function' && (v as { prototype?: unknown }).prototype instanceof Error);
  expect(errorClasses.length).toBeGreaterThanOrEqual(12);
  for (const [name, cls] of errorClasses) {
    expect((root as Record<string, unknown>)[name]).toBe(cls);
    if (cls !== root.RelayError)
      expect((cls as { prototype: unknown }).prototype).toBeInstanceOf(root.RelayError);
  }
  const e = new root.ConfigError('bad option');
  expect(e.code).toBe('CONFIG');
  expect(new root.ParseError('bad input').code).toBe('ARGUMENT');
});
