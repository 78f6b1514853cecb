/**
 * The Dockerfile `relay-bot init` writes: no compiler toolchain in the build stage (the SQLite
 * driver Node 24 loads ships prebuilt binaries), install scripts skipped, runs as a user.
 */
import { scaffold } from '../../cli/commands/init.js';
import { parseDockerfile, runSteps } from '../support/dockerfile.js';

const stages = parseDockerfile(scaffold('weather-bot', '^0.1.0').Dockerfile!);
const runs = stages.flatMap((s) =>
  s.instructions.flatMap((i) => (i.op === 'RUN' ? runSteps(i.command) : [])),
);

test('the build stage installs no compilers and skips install scripts', () => {
  expect(runs.filter((r) => /apt-get|apk add|g\+\+|make\b|python3/.test(r))).toEqual([]);
  const install = runs.find((r) => r.startsWith('npm install') || r.startsWith('npm ci'));
  expect(install).toContain('--ignore-scripts');
  expect(stages.map((s) => s.image)).toEqual(['node:24-trixie-slim', 'node:24-trixie-slim']);
});

test('the final stage runs as the node user', () => {
  const last = stages[stages.length - 1]!;
  expect(last.instructions.filter((i) => i.op === 'USER')).toEqual([{ op: 'USER', user: 'node' }]);
});
