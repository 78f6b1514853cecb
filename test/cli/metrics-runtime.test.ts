/**
 * BotMetrics with a BotRuntime and a replica's LeaseKeeper: attachment and task-cancel drops are
 * exported by reason from 0, a replica's fenced state is a gauge, and /healthz says it is fenced.
 */
import { Bot, BotRuntime, OnCommand } from '../../index.js';
import {
  ATTACHMENT_DROP_REASONS,
  LeaseKeeper,
  MemoryLeaseStore,
  replicaSlotLease,
  sessionLease,
} from '../../framework/relay/index.js';
import { BotMetrics, startMetricsServer } from '../../cli/metrics.js';

function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

@Bot({ name: 'metered' })
class Metered {
  @OnCommand('ping')
  ping(): string {
    return 'pong';
  }
}

test('attachment and task-cancel drops: every reason from 0, then what the runtime counted', async () => {
  const runtime = new BotRuntime([new Metered()]);
  const metrics = new BotMetrics({ processMetrics: false, runtime });
  const before = await metrics.metrics();
  for (const reason of ATTACHMENT_DROP_REASONS) {
    expect(sample(before, `relay_attachment_drops_total{reason="${reason}"}`)).toBe(0);
  }
  expect(sample(before, 'relay_task_drops_total{reason="cancel_not_requester"}')).toBe(0);
  expect(sample(before, 'relay_task_drops_total{reason="cancel_unknown_task"}')).toBe(0);

  runtime.attachments.drops.increment('attachment_digest');
  runtime.attachments.drops.increment('attachment_digest');
  runtime.attachments.drops.increment('attachment_fetch');
  const after = await metrics.metrics();
  expect(sample(after, 'relay_attachment_drops_total{reason="attachment_digest"}')).toBe(2);
  expect(sample(after, 'relay_attachment_drops_total{reason="attachment_fetch"}')).toBe(1);
  expect(sample(after, 'relay_attachment_drops_total{reason="attachment_size"}')).toBe(0);
  // A second scrape adds only what grew since the first.
  runtime.attachments.drops.increment('attachment_digest');
  expect(sample(await metrics.metrics(), 'relay_attachment_drops_total{reason="attachment_digest"}')).toBe(3);
  expect(after).toContain('# TYPE relay_attachment_drops_total counter');
});

describe('a fenced replica', () => {
  let keeper: LeaseKeeper;
  beforeEach(async () => {
    keeper = new LeaseKeeper({ store: new MemoryLeaseStore(), replica: { replicaId: 'bots/0' } });
    keeper.want('scheduler');
    // As `relay-bot start` has it: its slot (kept while fenced) and its client id's session lease.
    keeper.want(replicaSlotLease(0), { keepWhileFenced: true });
    keeper.want(sessionLease(`relay-${'ab'.repeat(32)}-0`));
    await keeper.start();
  });
  afterEach(() => keeper.stop());

  const metricsOf = (k: LeaseKeeper): BotMetrics =>
    new BotMetrics({
      processMetrics: false,
      replica: {
        replicaId: k.holder,
        owned: () => k.owned(),
        get fenced() {
          return k.fenced;
        },
      },
    });

  test('relay_replica_fenced follows LeaseKeeper.fenced, labelled with the replica', async () => {
    const metrics = metricsOf(keeper);
    expect(sample(await metrics.metrics(), 'relay_replica_fenced{replica="bots/0"}')).toBe(0);
    await keeper.fence();
    expect(sample(await metrics.metrics(), 'relay_replica_fenced{replica="bots/0"}')).toBe(1);
    await keeper.rejoin();
    expect(sample(await metrics.metrics(), 'relay_replica_fenced{replica="bots/0"}')).toBe(0);
  });

  test('/healthz answers 503 naming the fence and replica.fenceAfterMs, and lists fenced: yes', async () => {
    const metrics = metricsOf(keeper);
    metrics.markRunning();
    await keeper.fence();
    const server = await startMetricsServer(metrics, { host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(`${server.url}/healthz`);
      const body = await res.text();
      expect(res.status).toBe(503);
      expect(body.split('\n')).toEqual([
        'replica: fenced (the broker link was down longer than replica.fenceAfterMs; it rejoins once the link is back)',
        'replica: bots/0',
        'leases: replica-slot/0',
        'session: not held',
        'fenced: yes',
        '',
      ]);
    } finally {
      await server.close();
    }
  });

  test('not fenced: /healthz goes on to its other checks and lists fenced: no', async () => {
    const metrics = metricsOf(keeper);
    metrics.markRunning();
    const h = await metrics.health();
    // No client attached: the connection check is the next to answer.
    expect(h).toEqual({
      ok: false,
      reason: 'mqtt: not connected to the broker',
      details: ['replica: bots/0', 'leases: replica-slot/0, scheduler', 'session: held', 'fenced: no'],
    });
  });
});
