/**
 * The start banner's command prefix (cli/invocation.ts), decided from real files: a temp tree laid
 * out as a checkout, a project with the package in node_modules, and a global bin dir on PATH.
 */
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { cliCommand, executableAt } from '../../cli/invocation.js';
import { tempDir } from './helpers.js';

let tmp: { dir: string; remove(): Promise<void> };
beforeAll(async () => {
  tmp = await tempDir('relay-invocation-');
});
afterAll(() => tmp.remove());

async function executable(file: string): Promise<string> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, '#!/usr/bin/env node\n');
  await chmod(file, 0o755);
  return file;
}

test('in a checkout (no bin linked anywhere) it is npm run relay-bot --', async () => {
  const main = await executable(path.join(tmp.dir, 'checkout', 'dist', 'cli', 'main.js'));
  expect(cliCommand({ mainFile: main, pathEnv: '/usr/bin:/bin', executableAt })).toBe('npm run relay-bot --');
});

test('installed in a project it is npx relay-bot, even though npm put node_modules/.bin on PATH', async () => {
  const project = path.join(tmp.dir, 'project');
  const main = await executable(path.join(project, 'node_modules', 'relay-bot', 'dist', 'cli', 'main.js'));
  const bin = path.join(project, 'node_modules', '.bin');
  await mkdir(bin, { recursive: true });
  await symlink(main, path.join(bin, 'relay-bot'));
  expect(cliCommand({ mainFile: main, pathEnv: `${bin}:/usr/bin`, executableAt })).toBe('npx relay-bot');
});

test('with its bin on PATH (global install, the image) it is relay-bot', async () => {
  const prefix = path.join(tmp.dir, 'global');
  const main = await executable(
    path.join(prefix, 'lib', 'node_modules', 'relay-bot', 'dist', 'cli', 'main.js'),
  );
  await mkdir(path.join(prefix, 'bin'), { recursive: true });
  await symlink(main, path.join(prefix, 'bin', 'relay-bot'));
  expect(cliCommand({ mainFile: main, pathEnv: `/usr/bin:${prefix}/bin`, executableAt })).toBe('relay-bot');
});

test('another relay-bot on PATH (not this one) does not count', async () => {
  const other = await executable(path.join(tmp.dir, 'other', 'bin', 'relay-bot'));
  const main = await executable(path.join(tmp.dir, 'checkout2', 'dist', 'cli', 'main.js'));
  expect(cliCommand({ mainFile: main, pathEnv: path.dirname(other), executableAt })).toBe(
    'npm run relay-bot --',
  );
});
