/**
 * `npm run chaos -- --cycles N`: the crash test with more SIGKILL cycles than CI runs.
 */
import { spawnSync } from 'node:child_process';

function cyclesFromArgs(args: string[]): number {
  const i = args.indexOf('--cycles');
  const raw = i >= 0 ? args[i + 1] : '50';
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--cycles needs a whole number of at least 1, got ${raw ?? 'nothing'}`);
    process.exit(2);
  }
  return n;
}

const cycles = cyclesFromArgs(process.argv.slice(2));
const result = spawnSync('npx', ['jest', 'test/integration/crash.test.ts'], {
  stdio: 'inherit',
  env: { ...process.env, RELAY_CHAOS_CYCLES: String(cycles), NODE_OPTIONS: '--experimental-vm-modules' },
});
process.exit(result.status ?? 1);
