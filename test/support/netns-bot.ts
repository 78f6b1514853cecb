/**
 * `relay-bot start` inside a test host (test/support/netns.ts): the CLI as test/cli/helpers.ts runs
 * it (clean environment, tsx), but spawned through `ip netns exec`, so the bot sees only that host's
 * network. Resolves once the bot printed its user id.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { cliEnv, MAIN, ROOT, type RunningBot } from '../cli/helpers.js';
import type { NetHost } from './netns.js';

const TSX = pathToFileURL(createRequire(path.join(ROOT, 'package.json')).resolve('tsx')).href;

export async function startBotIn(
  host: NetHost,
  opts: { cwd: string; env: Record<string, string>; timeoutMs?: number },
): Promise<RunningBot> {
  const child = host.spawn(process.execPath, ['--import', TSX, MAIN, 'start'], {
    cwd: opts.cwd,
    env: cliEnv(opts.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin!.end();
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const userId = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`start in ${host.name} printed no user id in time\nstdout: ${out}\nstderr: ${err}`));
    }, opts.timeoutMs ?? 60_000);
    const poll = setInterval(() => {
      const m = /user id: ([0-9a-f]{32})/.exec(out);
      if (!m) return;
      clearInterval(poll);
      clearTimeout(timer);
      resolve(m[1]!);
    }, 50);
    void exited.then((code) => {
      clearInterval(poll);
      clearTimeout(timer);
      reject(new Error(`start in ${host.name} exited with ${code}\nstdout: ${out}\nstderr: ${err}`));
    });
  });
  return {
    child,
    userId,
    stdout: () => out,
    stderr: () => err,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
