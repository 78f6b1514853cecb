/** Small facts about this host that tests starting their own servers need. */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';

/** A TCP port nothing listens on right now (another process may still take it first). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}

/** uid and gid of a system account, for servers that drop root privileges before writing. */
export function systemUser(name: string): { uid: number; gid: number } | undefined {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}

/** Polls until `answers()` is true; false when the process exited first or 5 s passed. */
export async function waitUntilServing(
  proc: ChildProcess,
  answers: () => Promise<boolean>,
): Promise<boolean> {
  for (let attempt = 0; attempt < 50; attempt++) {
    if (await answers()) return true;
    if (proc.exitCode !== null) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}
