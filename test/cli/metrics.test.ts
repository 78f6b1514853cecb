/**
 * `relay-bot start` with metrics.port: /metrics (Prometheus text) and /healthz, against a broker
 * this test owns, so it can take the broker away and watch /healthz turn 503.
 */
import { connectAsync } from 'mqtt';
import {
  DROP_REASONS,
  MemoryRelayStore,
  RelayClient,
  startEmbeddedBroker,
  type EmbeddedBroker,
} from '../../framework/relay/index.js';
import { runCli, startBot, tempDir, type RunningBot } from './helpers.js';

async function get(url: string): Promise<{ status: number; body: string; type: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') ?? '' };
}

/** The value of an unlabelled sample, or of the sample with exactly these labels as printed. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, deadlineMs = 30_000): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('relay-bot start with metrics', () => {
  let tmp: { dir: string; remove(): Promise<void> };
  let broker: EmbeddedBroker | undefined;
  let bot: RunningBot | undefined;
  let base: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    tmp = await tempDir();
    broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0 });
    env = { RELAY_BROKER_URL: broker.url, RELAY_POW_BITS: '8' };
    bot = await startBot([], { cwd: tmp.dir, env: { ...env, RELAY_METRICS_PORT: '0' } });
    const m = /^metrics: (http:\/\/127\.0\.0\.1:\d+)\/metrics$/m.exec(bot.stdout());
    if (!m) throw new Error(`start did not print the metrics URL:\n${bot.stdout()}`);
    base = m[1]!;
  }, 120_000);

  afterAll(async () => {
    if (bot) await bot.stop('SIGKILL');
    await broker?.close();
    await tmp.remove();
  }, 60_000);

  test('/healthz answers 200 ok while connected', async () => {
    const h = await get(`${base}/healthz`);
    expect(h.status).toBe(200);
    expect(h.body).toBe('ok\n');
  });

  test('/metrics counts /ping in and pong out, times the handler, and counts drops by reason', async () => {
    const r = await runCli(['send', bot!.userId, '/ping', '--wait', '10'], { cwd: tmp.dir, env });
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toContain('pong');

    // A payload that is not an envelope, straight onto the bot's inbox: a 'codec' drop.
    const junk = await connectAsync(broker!.url, { protocolVersion: 5 });
    await junk.publishAsync(`relay/u/${bot!.userId}/inbox`, Buffer.from('not an envelope'), { qos: 1 });
    // The same at QoS 0: dropped unread, a 'qos' drop (PROTOCOL.md §3).
    await junk.publishAsync(`relay/u/${bot!.userId}/inbox`, Buffer.from('not an envelope'), { qos: 0 });
    await junk.endAsync();

    const text = await until('the drops to be counted', async () => {
      const t = (await get(`${base}/metrics`)).body;
      const codec = sample(t, 'relay_drops_total{reason="codec"}') ?? 0;
      return codec >= 1 && (sample(t, 'relay_drops_total{reason="qos"}') ?? 0) >= 1 ? t : undefined;
    });
    const m = await get(`${base}/metrics`);
    expect(m.status).toBe(200);
    expect(m.type).toContain('text/plain');
    expect(sample(text, 'relay_messages_in_total')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'relay_messages_out_total')).toBeGreaterThanOrEqual(1);
    expect(text).toContain('# TYPE relay_handler_duration_seconds histogram');
    expect(sample(text, 'relay_handler_duration_seconds_count{outcome="ok"}')).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^relay_handler_duration_seconds_bucket\{le="\+Inf",outcome="ok"\} [1-9]/m);
    // Every drop reason is exported from the start, at 0 until it happens.
    expect(sample(text, 'relay_drops_total{reason="pow"}')).toBe(0);
    // The runtime's drops too (metrics-runtime.test.ts counts them up): start passes the runtime.
    expect(sample(text, 'relay_attachment_drops_total{reason="attachment_digest"}')).toBe(0);
    expect(sample(text, 'relay_task_drops_total{reason="cancel_unknown_task"}')).toBe(0);
    // The client's work counters (RelayClient.work): every kind from 0; the /ping found its session
    // decoded in the cache (the Welcome's commit cached it), and one process never loses a race.
    expect(sample(text, 'relay_client_work_total{kind="state_cache_hit"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'relay_client_work_total{kind="stale_commit"}')).toBe(0);
    expect(sample(text, 'relay_client_work_total{kind="access_reload"}')).toBe(0);
    // One process, no replica: no fenced gauge.
    expect(text).not.toContain('relay_replica_fenced');
    expect(sample(text, 'relay_sessions')).toBe(1);
    expect(sample(text, 'relay_groups')).toBe(0);
    expect(sample(text, 'relay_outbox_depth')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'relay_mqtt_connected')).toBe(1);
    // prom-client's process metrics come along; nothing from the global default register is needed.
    expect(text).toContain('process_cpu_user_seconds_total');
  }, 90_000);

  test('groups: every group drop reason from 0, relay_groups and group events count the bot joining', async () => {
    const before = (await get(`${base}/metrics`)).body;
    for (const reason of DROP_REASONS.filter((r) => r.startsWith('group_') || r.startsWith('rejoin_'))) {
      expect(sample(before, `relay_drops_total{reason="${reason}"}`)).toBe(0);
    }
    for (const kind of ['created', 'joined', 'members', 'rejoined', 'left']) {
      expect(sample(before, `relay_group_events_total{kind="${kind}"}`)).toBe(0);
    }
    const out = sample(before, 'relay_messages_out_total')!;

    const peer = await RelayClient.create({
      store: new MemoryRelayStore(),
      broker: { url: broker!.url },
      powBits: 8,
    });
    const replies: string[] = [];
    peer.on('message', (m) => {
      if (m.conversation.kind === 'group') replies.push(m.content.content);
    });
    await peer.start();
    try {
      const group = await peer.createGroup([bot!.userId], { name: 'metered' });
      const text = await until('the bot to join', async () => {
        const t = (await get(`${base}/metrics`)).body;
        return sample(t, 'relay_groups') === 1 ? t : undefined;
      });
      expect(sample(text, 'relay_group_events_total{kind="joined"}')).toBe(1);
      // The bot answers in the group through the metered client; its reply is counted.
      await peer.sendToGroup(group.groupId, '/echo in the group');
      await until('the reply', async () => (replies.includes('in the group') ? true : undefined));
      const after = (await get(`${base}/metrics`)).body;
      expect(sample(after, 'relay_messages_out_total')).toBeGreaterThan(out);
    } finally {
      await peer.stop();
    }
  }, 90_000);

  test('unknown paths are 404, other methods 405', async () => {
    expect((await get(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  test('with the broker gone /healthz turns 503 naming MQTT, and mqtt_connected drops to 0', async () => {
    await broker!.close();
    broker = undefined;
    const h = await until('/healthz to fail', async () => {
      const r = await get(`${base}/healthz`);
      return r.status === 503 ? r : undefined;
    });
    expect(h.body).toMatch(/^mqtt: not connected/);
    expect(sample((await get(`${base}/metrics`)).body, 'relay_mqtt_connected')).toBe(0);
  }, 60_000);

  test('SIGTERM closes the metrics server and exits 0', async () => {
    const code = await bot!.stop('SIGTERM');
    bot = undefined;
    expect(code).toBe(0);
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  }, 60_000);
});
