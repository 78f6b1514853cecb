/**
 * Group fan-out through a real broker: from one member's sendToGroup to the moment the LAST of the
 * other N-1 members has the message (its 'message' event), for groups of 10, 50 and 100 members,
 * every member a RelayClient in this process (MemoryRelayStore, PoW 8 bits). Baseline in the same
 * run: one plain MQTT QoS 1 publisher and N-1 plain subscribers in this process, same payload size,
 * publish → the last subscriber has it.
 *
 * All receivers share this process's event loop, so the last receipt comes after N-1 decryptions
 * done one after another on one core; the first receipt is printed too, and the CPU this process
 * spent per message, to tell the network from that.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  groupTopic,
  MqttTransport,
  type GroupEvent,
  type ReceivedMessage,
  type RelayClient,
  type TopicId,
} from '../framework/relay/index.js';
import { withTimeout } from './raw-peers.js';
import { benchClient, inBatches } from './clients.js';
import { cpuMeter } from './cpu.js';
import { heading, note, numbersFromEnv, percentile, report, sleep, until } from './harness.js';

/** `BENCH_GROUP_FANOUT_N=10,50` measures those sizes only. */
const SIZES = numbersFromEnv('BENCH_GROUP_FANOUT_N', [10, 50, 100]);
const WARMUP = 5;
const MESSAGES = 30;
const CLIENT_BATCH = 10;
const JOIN_TIMEOUT_MS = 120_000;
const TEXT = 'x'.repeat(120);
/** Give up on 100 clients (and measure the sizes that fit) when the process would grow past this. */
const MAX_RSS_MB = Number(process.env.BENCH_GROUP_MAX_RSS_MB ?? 6000);

const rssMb = (): number => process.memoryUsage().rss / 1024 / 1024;

/** Runs `work`, returning what it returns plus this process's CPU and the machine's busy share. */
async function withCpu<T>(work: () => Promise<T>): Promise<{ value: T; cpuMs: number; busy: number }> {
  const meter = cpuMeter();
  const value = await work();
  const used = meter();
  return { value, cpuMs: used.selfMs, busy: used.machineBusy };
}

interface Arrivals {
  first: number;
  last: number;
}

/** Counts arrivals of one tracked message across receivers. */
class Tracker {
  private readonly open = new Map<string, { left: number; first?: number; done: (a: Arrivals) => void }>();

  arrived(id: string | undefined): void {
    const t = id === undefined ? undefined : this.open.get(id);
    if (!t) return;
    const at = performance.now();
    t.first ??= at;
    if (--t.left > 0) return;
    this.open.delete(id!);
    t.done({ first: t.first, last: at });
  }

  expect(id: string, receivers: number): Promise<Arrivals> {
    return new Promise((done) => this.open.set(id, { left: receivers, done }));
  }
}

export interface Latencies {
  first: number[];
  last: number[];
}

function summary(l: Latencies): { p50: number; p95: number; first: number } {
  const last = [...l.last].sort((a, b) => a - b);
  const first = [...l.first].sort((a, b) => a - b);
  return { p50: percentile(last, 0.5), p95: percentile(last, 0.95), first: percentile(first, 0.5) };
}

/** One publisher and n-1 subscribers on plain MqttTransport, QoS 1, `bytes` per message. */
export async function rawFanout(url: string, n: number, bytes: number): Promise<Latencies> {
  const base = `bench-gfan-raw-${randomBytes(4).toString('hex')}`;
  const topic = `${base}/t`;
  const tracker = new Tracker();
  const transport = (name: string): MqttTransport =>
    new MqttTransport({ url, clientId: `${base}-${name}`, sessionExpirySeconds: 0 });
  const publisher = transport('pub');
  const subscribers = Array.from({ length: n - 1 }, (_, i) => transport(`s${i}`));
  for (const s of subscribers) {
    s.onMessage(async (m) => tracker.arrived(Buffer.from(m.payload.subarray(0, 16)).toString('hex')));
  }
  try {
    await publisher.connect();
    for (let i = 0; i < subscribers.length; i += CLIENT_BATCH) {
      await Promise.all(subscribers.slice(i, i + CLIENT_BATCH).map((s) => s.connect()));
    }
    await Promise.all(subscribers.map((s) => s.subscribe(topic, { qos: 1 })));
    const out: Latencies = { first: [], last: [] };
    for (let i = 0; i < WARMUP + MESSAGES; i++) {
      const payload = randomBytes(bytes);
      const got = tracker.expect(payload.subarray(0, 16).toString('hex'), subscribers.length);
      const start = performance.now();
      await publisher.publish(topic, payload, { qos: 1 });
      const a = await withTimeout(got, 'raw fan-out');
      if (i < WARMUP) continue;
      out.first.push(a.first - start);
      out.last.push(a.last - start);
    }
    return out;
  } finally {
    await Promise.all([publisher, ...subscribers].map((t) => t.end().catch(() => undefined)));
  }
}

interface Members {
  clients: RelayClient[];
  tracker: Tracker;
  /** group id → user ids that reported 'joined'. */
  joined: Map<string, Set<string>>;
}

async function startClients(url: string, prefix: string, count: number): Promise<Members> {
  const tracker = new Tracker();
  const joined = new Map<string, Set<string>>();
  const clients = await inBatches(
    count,
    CLIENT_BATCH,
    async () => {
      const c = await benchClient(url, prefix, {
        powBits: 8,
        welcomeQuota: { perSenderPerMinute: 20, totalPerMinute: 1000 },
        groups: { commitDelayMs: 20 },
      });
      c.on('message', (m: ReceivedMessage) => {
        if (m.conversation.kind === 'group') tracker.arrived(m.content.id);
      });
      c.on('group', (e: GroupEvent) => {
        if (e.kind !== 'joined') return;
        const set = joined.get(e.groupId) ?? new Set<string>();
        set.add(c.userId);
        joined.set(e.groupId, set);
      });
      await c.start();
      return c;
    },
    () => rssMb() <= MAX_RSS_MB,
  );
  return { clients, tracker, joined };
}

async function measureGroup(url: string, prefix: string, members: Members, n: number): Promise<void> {
  const group = members.clients.slice(0, n);
  const creator = group[0]!;
  const sender = group[1]!;
  const t0 = performance.now();
  const created = await withCpu(async () => {
    const info = await creator.createGroup(
      group.slice(1).map((c) => c.userId),
      { name: `bench ${n}` },
    );
    await until(
      () => (members.joined.get(info.groupId)?.size ?? 0) >= n - 1,
      JOIN_TIMEOUT_MS,
      `${n - 1} members to join`,
    );
    return info;
  });
  const info = created.value;
  const setupSeconds = (performance.now() - t0) / 1000;
  await sleep(300); // bundle republishing after the joins settles

  // The payload size the broker carries, for the raw baseline.
  const probe = new MqttTransport({
    url,
    clientId: `bench-gfan-probe-${randomBytes(4).toString('hex')}`,
    sessionExpirySeconds: 0,
  });
  let bytes = 0;
  probe.onMessage(async (m) => void (bytes = Math.max(bytes, m.payload.length)));
  await probe.connect();
  await probe.subscribe(groupTopic(prefix, info.topicId as TopicId), { qos: 1 });

  const out: Latencies = { first: [], last: [] };
  const measured = await withCpu(async () => {
    for (let i = 0; i < WARMUP + MESSAGES; i++) {
      const id = randomUUID();
      const got = members.tracker.expect(id, n - 1);
      const start = performance.now();
      await sender.sendToGroup(info.groupId, { content: TEXT, id });
      const a = await withTimeout(got, `fan-out to ${n - 1} members`);
      if (i === WARMUP - 1) await sleep(50);
      if (i < WARMUP) continue;
      out.first.push(a.first - start);
      out.last.push(a.last - start);
    }
  });
  await probe.end();
  const raw = summary(await rawFanout(url, n, bytes));
  const ours = summary(out);

  heading(`N = ${n}: 1 sender → ${n - 1} receivers, ${bytes} B on the wire, ${MESSAGES} messages`);
  note(
    `createGroup with ${n - 1} invitees until all joined: ${setupSeconds.toFixed(1)} s, ` +
      `${(created.cpuMs / 1000).toFixed(1)} s CPU in this process`,
  );
  report('raw QoS 1 fan-out: last subscriber, p50', raw.p50, 'ms');
  report('raw QoS 1 fan-out: last subscriber, p95', raw.p95, 'ms');
  report('group: sendToGroup → last member, p50', ours.p50, 'ms', { name: 'raw p50', value: raw.p50 });
  report('group: sendToGroup → last member, p95', ours.p95, 'ms', { name: 'raw p95', value: raw.p95 });
  report('group: sendToGroup → first member, p50', ours.first, 'ms', { name: 'raw first', value: raw.first });
  const perMessage = measured.cpuMs / (WARMUP + MESSAGES);
  note(
    `CPU in this process per group message: ${perMessage.toFixed(1)} ms for the sender and ${n - 1} ` +
      `receivers, ~${(perMessage / n).toFixed(2)} ms each; machine ${measured.busy.toFixed(0)} % busy ` +
      `(2 cores = 100 %); RSS ${rssMb().toFixed(0)} MB`,
  );
}

export async function run(url: string): Promise<void> {
  heading('fan-out through the broker: sendToGroup → every other member has it');
  const prefix = `bench-gfan-${randomBytes(4).toString('hex')}`;
  const want = Math.max(...SIZES);
  const t0 = performance.now();
  const rssBefore = rssMb();
  const started = await withCpu(() => startClients(url, prefix, want));
  const members = started.value;
  try {
    const have = members.clients.length;
    note(
      `${have} RelayClients (MemoryRelayStore, PoW 8 bits, commitDelayMs 20) started in ` +
        `${((performance.now() - t0) / 1000).toFixed(1)} s; RSS ${rssBefore.toFixed(0)} → ${rssMb().toFixed(0)} MB`,
    );
    if (have < want) {
      note(`stopped at ${have} clients: RSS passed ${MAX_RSS_MB} MB; larger groups are not measured`);
    }
    note('all clients share this process (one event loop on a 2-core machine), receivers included');
    for (const n of SIZES) {
      if (n > have) {
        note(`N = ${n}: skipped, only ${have} clients fit in this process`);
        continue;
      }
      await measureGroup(url, prefix, members, n);
    }
    note(
      'the last-member figures include this one process handling the N-1 copies one after another ' +
        '(about N-1 times the CPU per receiver above); with each member on its own device the last ' +
        'receipt would come much closer to the first',
    );
  } finally {
    await Promise.all(members.clients.map((c) => c.stop().catch(() => undefined)));
  }
}
