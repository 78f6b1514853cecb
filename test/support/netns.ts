/**
 * Test hosts on one machine (issue #13, "the same identity answering from two hosts"): each host is
 * a network namespace joined to the root namespace by a veth pair on its own /29, so a process
 * started in it reaches the root namespace only through that link, and `cut()` takes the link
 * down as a pulled cable would (nothing is closed or reset; packets just stop).
 *
 * Needs root and iproute2's `ip`; `netnsUnavailable()` says why not, for a clean skip. Names carry
 * a random tag so concurrent runs do not collide, and `remove()` deletes the namespace (which
 * deletes the veth pair with it).
 */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function ip(...args: string[]): Promise<void> {
  await run('ip', args);
}

/** Why namespaces cannot be made here (not root, no `ip`, no permission), or undefined when they can. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not running as root (ip netns needs CAP_SYS_ADMIN)';
  try {
    await run('ip', ['-V']);
  } catch {
    return "iproute2's `ip` is not installed";
  }
  // A namespace made and deleted at once: a container without CAP_SYS_ADMIN fails here.
  const probe = `relay-probe-${randomBytes(3).toString('hex')}`;
  try {
    await ip('netns', 'add', probe);
  } catch (e) {
    return `ip netns add failed: ${e instanceof Error ? e.message.trim() : String(e)}`;
  }
  await ip('netns', 'del', probe).catch(() => undefined);
  return undefined;
}

export interface NetHost {
  /** The namespace's name (`ip netns exec <name> …`). */
  readonly name: string;
  /** The root namespace's end of the link: what a process in the host dials to reach the root. */
  readonly gateway: string;
  /** A second root-side address on the link, so one service can be cut off apart from another. */
  readonly serviceGateway: string;
  /** The host's own address, reachable from the root namespace while the link is up. */
  readonly address: string;
  /** Spawns `command` inside the namespace; the child is the command itself (ip netns exec execs it). */
  spawn(command: string, args: readonly string[], options?: SpawnOptions): ChildProcess;
  /**
   * Drops the host's packets to `address` (a blackhole route in the host): it still receives from
   * there but cannot answer, as with a one-way fault. Undone by restore().
   */
  dropOutboundTo(address: string): Promise<void>;
  /** Takes the link down at the root's end: no packet crosses until restore(). */
  cut(): Promise<void>;
  restore(): Promise<void>;
  /** Deletes the namespace and its link; safe to call twice. */
  remove(): Promise<void>;
}

/**
 * `count` hosts on 10.<a>.<b>.<8i>/29 links, <a>.<b> random within 10.200-10.249 so parallel runs
 * (and the machine's own networks, which do not use that range here) do not overlap.
 */
export async function createNetHosts(count: number): Promise<NetHost[]> {
  const tag = randomBytes(3).toString('hex');
  const net16 = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}`;
  const hosts: NetHost[] = [];
  try {
    for (let i = 0; i < count; i++) hosts.push(await createHost(tag, i, net16));
  } catch (e) {
    for (const h of hosts) await h.remove();
    throw e;
  }
  return hosts;
}

async function createHost(tag: string, i: number, net16: string): Promise<NetHost> {
  const name = `relay-${tag}-${i}`;
  // Interface names are at most 15 characters.
  const outer = `rv${tag}${i}r`;
  const inner = `rv${tag}${i}n`;
  const gateway = `${net16}.${8 * i + 1}`;
  const address = `${net16}.${8 * i + 2}`;
  const serviceGateway = `${net16}.${8 * i + 3}`;
  const blackholes: string[] = [];
  let removed = false;
  const remove = async (): Promise<void> => {
    if (removed) return;
    removed = true;
    await ip('netns', 'del', name).catch(() => undefined);
    // Gone with the namespace once its end moved there; not when setup failed before that.
    await ip('link', 'del', outer).catch(() => undefined);
  };
  try {
    await ip('netns', 'add', name);
    await ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', inner);
    await ip('link', 'set', inner, 'netns', name);
    await ip('addr', 'add', `${gateway}/29`, 'dev', outer);
    await ip('addr', 'add', `${serviceGateway}/29`, 'dev', outer);
    await ip('link', 'set', outer, 'up');
    await ip('-n', name, 'addr', 'add', `${address}/29`, 'dev', inner);
    await ip('-n', name, 'link', 'set', inner, 'up');
    await ip('-n', name, 'link', 'set', 'lo', 'up');
  } catch (e) {
    await remove();
    throw e;
  }
  return {
    name,
    gateway,
    serviceGateway,
    address,
    spawn: (command, args, options = {}) => spawn('ip', ['netns', 'exec', name, command, ...args], options),
    dropOutboundTo: async (to) => {
      await ip('-n', name, 'route', 'add', 'blackhole', `${to}/32`);
      blackholes.push(to);
    },
    cut: () => ip('link', 'set', outer, 'down'),
    // The addresses stay through down and up; the kernel drops and restores their routes.
    restore: async () => {
      for (const to of blackholes.splice(0)) await ip('-n', name, 'route', 'del', 'blackhole', `${to}/32`);
      await ip('link', 'set', outer, 'up');
    },
    remove,
  };
}
