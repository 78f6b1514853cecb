/**
 * Longer chaos runs than CI's:
 *
 *   npm run chaos -- --cycles N                 the crash test (one process, SQLite and Postgres)
 *   npm run chaos -- --replicas R --cycles N    R replicas of one bot under SIGKILL
 *                                               (test/integration/replicas-chaos.test.ts)
 *   npm run chaos -- --agents --cycles N        a streaming, typing bot under SIGKILL
 *                                               (test/integration/agent-crash.test.ts)
 *
 * RELAY_CHAOS_SEED in the environment replays a replica or agent run (each run prints its seed).
 */
import { spawnSync } from 'node:child_process';

/** The whole number after `flag`, at least `min`; `fallback` when the flag is absent. */
function wholeArg(
  args: string[],
  flag: string,
  fallback: number | undefined,
  min: number,
): number | undefined {
  const i = args.indexOf(flag);
  if (i < 0) return fallback;
  const raw = args[i + 1];
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    console.error(`${flag} needs a whole number of at least ${min}, got ${raw ?? 'nothing'}`);
    process.exit(2);
  }
  return n;
}

const args = process.argv.slice(2);
const replicas = wholeArg(args, '--replicas', undefined, 2);
const agents = args.includes('--agents');
if (agents && replicas !== undefined) {
  console.error('--agents and --replicas are two different tests: give one of them');
  process.exit(2);
}
const cycles = wholeArg(args, '--cycles', replicas === undefined && !agents ? 50 : 10, 1)!;
const testFile = agents
  ? 'test/integration/agent-crash.test.ts'
  : replicas === undefined
    ? 'test/integration/crash.test.ts'
    : 'test/integration/replicas-chaos.test.ts';
const result = spawnSync('npx', ['jest', testFile], {
  stdio: 'inherit',
  env: {
    ...process.env,
    RELAY_CHAOS_CYCLES: String(cycles),
    ...(agents ? { RELAY_AGENT_CRASH_CYCLES: String(cycles) } : {}),
    ...(replicas !== undefined ? { RELAY_CHAOS_REPLICAS: String(replicas) } : {}),
    NODE_OPTIONS: '--experimental-vm-modules',
  },
});
process.exit(result.status ?? 1);
