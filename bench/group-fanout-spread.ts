/**
 * Group fan-out with the members spread over several processes: from one member's sendToGroup to
 * the moment the LAST of the other N-1 members has the message, N = 100 by default, the receivers
 * in CHILDREN child processes (bench/group-members-child.ts) and the sender and the creator in
 * this one. Unlike bench/group-fanout.ts, where all receivers share one event loop and the last
 * receipt waits for N-1 decryptions in a row, here the children decrypt side by side, as members
 * on their own devices would (on this machine, as far as its cores allow).
 *
 * Arrival times come from the children as performance.timeOrigin + performance.now(), a clock
 * the processes of one machine share. Printed with the first and last arrival, the CPU the
 * children spent per received message, and the same-run baseline: raw QoS 1 fan-out to N-1
 * plain subscribers (bench/group-fanout.ts's rawFanout, same payload size).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  groupTopic,
  MqttTransport,
  type GroupEvent,
  type RelayClient,
  type TopicId,
} from '../framework/relay/index.js';
import { BenchChild } from './child.js';
import { benchClient } from './clients.js';
import { rawFanout } from './group-fanout.js';
import { heading, note, numbersFromEnv, percentile, report, sleep, until } from './harness.js';
import { withTimeout } from './raw-peers.js';

/** `BENCH_GROUP_SPREAD_N=50` measures that size. */
const SIZES = numbersFromEnv('BENCH_GROUP_SPREAD_N', [100]);
const CHILDREN = Number(process.env.BENCH_GROUP_SPREAD_CHILDREN ?? 4);
const WARMUP = 5;
const MESSAGES = Number(process.env.BENCH_GROUP_SPREAD_MESSAGES ?? 30);
const JOIN_TIMEOUT_MS = 300_000;
/** PROTOCOL.md §9: a commit carries at most 10 Adds. */
const ADD_BATCH = 10;
const TEXT = 'x'.repeat(120);
/** `BENCH_GROUP_SPREAD_CPU_PROF=<dir>`: each child writes a --cpu-prof profile there at its stop. */
const PROFILE_DIR = process.env.BENCH_GROUP_SPREAD_CPU_PROF;
const nodeFlags = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [];

const clock = (): number => performance.timeOrigin + performance.now();

/** Arrivals of tracked messages, from every child. */
class Arrivals {
  private readonly open = new Map<string, { left: number; first: number; last: number; done: () => void }>();
  private readonly finished = new Map<string, { first: number; last: number }>();

  arrived(id: unknown, at: unknown): void {
    const t = typeof id === 'string' ? this.open.get(id) : undefined;
    if (!t || typeof at !== 'number') return;
    t.first = Math.min(t.first, at);
    t.last = Math.max(t.last, at);
    if (--t.left > 0) return;
    this.open.delete(id as string);
    this.finished.set(id as string, { first: t.first, last: t.last });
    t.done();
  }

  async expect(
    id: string,
    receivers: number,
    send: () => Promise<void>,
  ): Promise<{ first: number; last: number }> {
    const done = new Promise<void>((resolve) =>
      this.open.set(id, { left: receivers, first: Infinity, last: -Infinity, done: resolve }),
    );
    await send();
    await withTimeout(done, `fan-out of ${id}`);
    const got = this.finished.get(id)!;
    this.finished.delete(id);
    return got;
  }
}

interface Spread {
  children: BenchChild[];
  userIds: string[];
  joined: Map<string, number>;
  arrivals: Arrivals;
}

async function startChildren(url: string, prefix: string, members: number): Promise<Spread> {
  const joined = new Map<string, number>();
  const arrivals = new Arrivals();
  const onMessage = (msg: Record<string, unknown>): void => {
    if (typeof msg.joined === 'string') joined.set(msg.joined, (joined.get(msg.joined) ?? 0) + 1);
    else if ('got' in msg) arrivals.arrived(msg.got, msg.at);
  };
  const per = Math.ceil(members / CHILDREN);
  const counts = Array.from({ length: CHILDREN }, (_, i) => Math.max(0, Math.min(per, members - i * per)));
  const started = await Promise.all(
    counts
      .filter((n) => n > 0)
      .map((n) =>
        BenchChild.start('group-members-child.ts', [url, prefix, String(n)], { onMessage, nodeFlags }),
      ),
  );
  return {
    children: started.map((s) => s.child),
    userIds: started.flatMap((s) => s.ready.userIds as string[]),
    joined,
    arrivals,
  };
}

async function measure(url: string, prefix: string, n: number): Promise<void> {
  // The creator and the sender here; the other n-2 members in the children.
  const local: RelayClient[] = [];
  const localJoined = new Set<string>();
  for (let i = 0; i < 2; i++) {
    const c = await benchClient(url, prefix, {
      powBits: 8,
      welcomeQuota: { perSenderPerMinute: 20, totalPerMinute: 1000 },
      groups: { commitDelayMs: 20 },
    });
    c.on('group', (e: GroupEvent) => void (e.kind === 'joined' && localJoined.add(e.groupId)));
    await c.start();
    local.push(c);
  }
  const [creator, sender] = local as [RelayClient, RelayClient];
  const spread = await startChildren(url, prefix, n - 2);
  // The creator's copies are counted as the children's are.
  creator.on('message', (m) => {
    if (m.conversation.kind === 'group') spread.arrivals.arrived(m.content.id, clock());
  });
  try {
    const t0 = performance.now();
    // In batches of ADD_BATCH (a commit's most Adds), each added only once the previous batch has
    // joined: a joiner subscribes after its Welcome, so a commit published before that is one it
    // never sees (PROTOCOL.md §9 "Delivery"). The committer's own 2 s spacing of deferred Adds is
    // too short on a loaded machine, and the members who miss one then fall behind for good.
    const invitees = [...spread.userIds];
    const info = await creator.createGroup([sender.userId, ...invitees.splice(0, ADD_BATCH - 1)], {
      name: `spread ${n}`,
    });
    for (let members = 1 + ADD_BATCH; ; members += ADD_BATCH) {
      const childMembers = Math.min(members, n) - 2;
      await until(
        () => localJoined.has(info.groupId) && (spread.joined.get(info.groupId) ?? 0) >= childMembers,
        JOIN_TIMEOUT_MS,
        `${childMembers + 1} members to join`,
      );
      if (invitees.length === 0) break;
      await creator.addToGroup(info.groupId, invitees.splice(0, ADD_BATCH));
    }
    const setupSeconds = (performance.now() - t0) / 1000;
    await sleep(300);
    // The payload size the broker carries, for the raw baseline.
    const probe = new MqttTransport({
      url,
      clientId: `bench-gspread-probe-${randomBytes(4).toString('hex')}`,
      sessionExpirySeconds: 0,
    });
    let bytes = 0;
    probe.onMessage(async (m) => void (bytes = Math.max(bytes, m.payload.length)));
    await probe.connect();
    await probe.subscribe(groupTopic(prefix, info.topicId as TopicId), { qos: 1 });
    const cpuBefore = await Promise.all(spread.children.map((c) => c.cpu()));
    const first: number[] = [];
    const last: number[] = [];
    for (let i = 0; i < WARMUP + MESSAGES; i++) {
      const id = randomUUID();
      const start = clock();
      const a = await spread.arrivals.expect(
        id,
        n - 1,
        async () => void (await sender.sendToGroup(info.groupId, { content: TEXT, id })),
      );
      if (i < WARMUP) continue;
      first.push(a.first - start);
      last.push(a.last - start);
    }
    const cpuAfter = await Promise.all(spread.children.map((c) => c.cpu()));
    await probe.end();
    const raw = await rawFanout(url, n, bytes);
    const rawLast = [...raw.last].sort((a, b) => a - b);
    const childMicros = cpuAfter.reduce((s, c, i) => s + c.micros - cpuBefore[i]!.micros, 0);
    first.sort((a, b) => a - b);
    last.sort((a, b) => a - b);
    heading(
      `N = ${n}: 1 sender → ${n - 1} receivers (${n - 2} in ${spread.children.length} child processes), ${bytes} B`,
    );
    note(
      `createGroup and addToGroup, 10 invitees at a time, until all ${n - 1} joined: ${setupSeconds.toFixed(1)} s`,
    );
    report('raw QoS 1 fan-out (one process): last subscriber, p50', percentile(rawLast, 0.5), 'ms');
    report('raw QoS 1 fan-out (one process): last subscriber, p99', percentile(rawLast, 0.99), 'ms');
    const rawP50 = { name: 'raw p50', value: percentile(rawLast, 0.5) };
    const rawP99 = { name: 'raw p99', value: percentile(rawLast, 0.99) };
    report('group: sendToGroup → last member, p50', percentile(last, 0.5), 'ms', rawP50);
    report('group: sendToGroup → last member, p99', percentile(last, 0.99), 'ms', rawP99);
    report('group: sendToGroup → first member, p50', percentile(first, 0.5), 'ms');
    note(
      `children's CPU per received message: ${(childMicros / 1000 / ((WARMUP + MESSAGES) * (n - 2))).toFixed(2)} ms ` +
        '(warm-up included; transport, MLS, store and events)',
    );
  } finally {
    await Promise.all(spread.children.map((c) => c.stop()));
    await Promise.all(local.map((c) => c.stop().catch(() => undefined)));
  }
}

export async function run(url: string): Promise<void> {
  heading(`fan-out with the members spread over ${CHILDREN} child processes`);
  for (const n of SIZES) await measure(url, `${'bench-gspread'}-${randomUUID().slice(0, 8)}`, n);
}
