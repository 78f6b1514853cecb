/**
 * Metrics read at scrape time from the BotRuntime (attachment and task-cancel drops) and from a
 * replica's LeaseKeeper (fenced). The runtime keeps plain counts; they become Prometheus counters
 * here, so the bot framework does not depend on prom-client.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/** What the metrics read from a BotRuntime: its drop counts, each by reason. */
export interface MeteredRuntime {
  readonly attachments: { readonly drops: { snapshot(): Readonly<Record<string, number>> } };
  readonly taskCounters: Readonly<Record<string, number>>;
}

/**
 * A counter by `reason` that follows `read()`, a set of counts that only grow: each scrape adds
 * what they grew by since the last one. Every reason is exported from 0, so rate() sees the first.
 */
function followedCounter(
  registry: Registry,
  name: string,
  help: string,
  read: () => Readonly<Record<string, number>>,
  label = 'reason',
): void {
  const seen = new Map<string, number>();
  const counter: Counter = new Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect: () => {
      for (const [reason, n] of Object.entries(read())) {
        const grown = n - (seen.get(reason) ?? 0);
        if (grown > 0) counter.labels(reason).inc(grown);
        seen.set(reason, n);
      }
    },
  });
  for (const reason of Object.keys(read())) counter.labels(reason).inc(0);
}

/** relay_attachment_drops_total and relay_task_drops_total, by reason. */
export function registerRuntimeMetrics(registry: Registry, runtime: MeteredRuntime): void {
  followedCounter(
    registry,
    'relay_attachment_drops_total',
    'Received attachments dropped before the handler ran, by reason (ATTACHMENT_DROP_REASONS: oversize, size, digest, decrypt, missing, fetch, refused)',
    () => runtime.attachments.drops.snapshot(),
  );
  followedCounter(
    registry,
    'relay_task_drops_total',
    'task-cancel messages dropped, by reason (TaskCounters: not the requester, unknown task)',
    () => runtime.taskCounters,
  );
}

/**
 * relay_client_work_total, by kind (RelayClient.work, WORK_COUNTERS): decoded-state cache outcomes,
 * saves that lost a race, access reloads. With replicas each one's series tell where a command's
 * CPU goes when a conversation's messages are spread over them.
 */
export function registerWorkMetrics(registry: Registry, read: () => Readonly<Record<string, number>>): void {
  followedCounter(
    registry,
    'relay_client_work_total',
    'Work a message may cost beyond its own crypto, by kind (WORK_COUNTERS): state_cache_hit, state_cache_stale and state_cache_cold (decoded MLS state reused, or decoded again because another process wrote it or it was not cached), state_epoch_reused (of those, a group whose epoch part was reused), stale_commit (a save lost a race and was redone), access_reload (replicas: the access index reloaded from the store)',
    read,
    'kind',
  );
}

/** relay_replica_fenced: 1 while this replica has fenced itself (cut off from the broker). */
export function registerFencedGauge(registry: Registry, fenced: () => boolean): void {
  const gauge: Gauge = new Gauge({
    name: 'relay_replica_fenced',
    help: '1 while this replica is fenced: its broker link was down longer than replica.fenceAfterMs, so it gave up its duties until the link is back',
    registers: [registry],
    collect: () => gauge.set(fenced() ? 1 : 0),
  });
}
