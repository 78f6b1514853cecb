/**
 * Prometheus metrics and a health check for `relay-bot start` (metrics.port / RELAY_METRICS_PORT).
 *
 * Everything lives in one Registry per BotMetrics (never prom-client's global register), so tests
 * and several bots in one process do not share counters. Counters are fed from the client's events
 * and from a thin wrapper around the client the BotRuntime is attached to; gauges are read at scrape
 * time (store, connection state).
 *
 * GET /metrics: Prometheus text format. GET /healthz: 200 `ok` when the MQTT connection is up and the
 * store answers, else 503 with the reason. A replica (broker.shareGroup) labels every metric with
 * `replica` and adds its id, the leases it owns and whether it is fenced to /healthz; a fenced
 * replica is not healthy.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { IsNull, type DataSource } from 'typeorm';
import type { AttachableClient, GroupApi } from '../index.js';
import {
  isSessionLease,
  type GroupEvent,
  type ReceivedMessage,
  type RelayClient,
} from '../framework/relay/index.js';
import {
  registerFencedGauge,
  registerRuntimeMetrics,
  registerWorkMetrics,
  type MeteredRuntime,
} from './metrics-runtime.js';

export type { MeteredRuntime } from './metrics-runtime.js';

/** Seconds; from 1 ms to the default 10 s handler time limit and a little past it. */
export const HANDLER_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** outbox_depth reports at most this many rows. */
export const OUTBOX_SCRAPE_LIMIT = 10_000;
/** How long a scrape or a health check waits for the store. */
export const STORE_TIMEOUT_MS = 3_000;

/** The kinds of RelayClient's 'group' event, each exported from 0. */
export const GROUP_EVENT_KINDS = [
  'created',
  'joined',
  'members',
  'rejoined',
  'left',
] as const satisfies ReadonlyArray<GroupEvent['kind']>;

/**
 * What the metrics read from the client (its events and connection state) and what the wrapper
 * given to the BotRuntime forwards (sending, the handler and the group API).
 */
export type MeteredClient = Pick<RelayClient, 'on' | 'off' | 'connected' | 'drops' | 'work'> &
  Pick<RelayClient, 'userId' | 'send' | 'setMessageHandler'> &
  GroupApi;

/** What the gauges and /healthz read from the store: row counts only. */
export interface MeteredStore {
  countSessions(): Promise<number>;
  countGroups(): Promise<number>;
  countOutbox(): Promise<number>;
}

/**
 * Counts through the store's DataSource (framework/store's entities), so a scrape neither loads
 * nor decrypts the conversations' MLS state, nor reads the outbox's payloads.
 */
export function storeCounts(dataSource: DataSource): MeteredStore {
  const conversations = (kind: 'direct' | 'group') => () =>
    dataSource.getRepository('conversations').count({ where: { kind } });
  // Quarantined rows stay for the operator to inspect; they are counted by relay_outbox_quarantined_total.
  const countOutbox = () => dataSource.getRepository('outbox').count({ where: { quarantined_at: IsNull() } });
  return { countSessions: conversations('direct'), countGroups: conversations('group'), countOutbox };
}

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export interface BotMetricsOptions {
  /** Also export prom-client's process and Node.js metrics (default true). */
  processMetrics?: boolean;
  storeTimeoutMs?: number;
  /** Set when this process is one replica of several: its id and the duties it owns now. */
  replica?: ReplicaReport;
  /** The bot runtime, whose attachment and task-cancel drops are exported at each scrape. */
  runtime?: MeteredRuntime;
}

/**
 * What metrics and /healthz say about a replica: its id, the leases it owns, and whether it
 * fenced itself (a LeaseKeeper).
 */
export interface ReplicaReport {
  readonly replicaId: string;
  /** The leases it owns now; /healthz lists the session lease (isSessionLease) apart, as `session:`. */
  owned(): string[];
  /** True while the replica is fenced (LeaseKeeper.fenced); /healthz then answers 503. */
  readonly fenced?: boolean;
}

/** /healthz's answer; `details` are extra lines after `ok` or the reason (a replica's leases). */
export type Health = { ok: true; details?: string[] } | { ok: false; reason: string; details?: string[] };

export class BotMetrics {
  readonly registry = new Registry();
  private readonly messagesIn: Counter;
  private readonly messagesOut: Counter;
  private readonly drops: Counter<'reason'>;
  private readonly groupEvents: Counter<'kind'>;
  private readonly quarantined: Counter;
  private readonly handlerDuration: Histogram<'outcome'>;
  private readonly powMining: Histogram;
  private client: MeteredClient | undefined;
  private store: MeteredStore | undefined;
  private state: 'starting' | 'running' | 'stopping' = 'starting';
  private readonly storeTimeoutMs: number;
  /** Replies each handler invocation made; counted once the client committed the message. */
  private readonly repliesOf = new WeakMap<ReceivedMessage, number>();
  private readonly listeners: Array<() => void> = [];
  private readonly replica: ReplicaReport | undefined;

  constructor(options: BotMetricsOptions = {}) {
    const registers = [this.registry];
    this.storeTimeoutMs = options.storeTimeoutMs ?? STORE_TIMEOUT_MS;
    this.replica = options.replica;
    // Replicas of one bot scrape alike; the label tells their series apart.
    if (options.replica) this.registry.setDefaultLabels({ replica: options.replica.replicaId });
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    if (options.runtime) registerRuntimeMetrics(this.registry, options.runtime);
    const replica = options.replica;
    if (replica) registerFencedGauge(this.registry, () => replica.fenced === true);
    this.messagesIn = new Counter({
      name: 'relay_messages_in_total',
      help: 'Messages received, verified, decrypted and committed (handled or not)',
      registers,
    });
    this.messagesOut = new Counter({
      name: 'relay_messages_out_total',
      help: 'Messages the bot sent: committed replies plus ctx.send() and scheduled sends',
      registers,
    });
    this.drops = new Counter({
      name: 'relay_drops_total',
      help: 'Inputs from the network dropped, by reason (see DROP_REASONS)',
      labelNames: ['reason'],
      registers,
    });
    this.quarantined = new Counter({
      name: 'relay_outbox_quarantined_total',
      help: 'Outbox rows set aside because they can never be published (too large, refused for good), each with the rows depending on it',
      registers,
    });
    this.powMining = new Histogram({
      name: 'relay_pow_mining_seconds',
      help: 'Time spent mining the proof of work of a first-contact Welcome',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.handlerDuration = new Histogram({
      name: 'relay_handler_duration_seconds',
      help: 'Time the bot runtime took per message (parsing, middleware, handlers, session save)',
      labelNames: ['outcome'],
      buckets: HANDLER_BUCKETS,
      registers,
    });
    const sessions: Gauge = new Gauge({
      name: 'relay_sessions',
      help: 'Direct (1:1) MLS sessions in the store',
      registers,
      collect: async () => {
        const n = await this.readStore((s) => s.countSessions());
        if (n !== undefined) sessions.set(n);
      },
    });
    // Counted from the store's rows, without decoding every group's MLS state.
    const groups: Gauge = new Gauge({
      name: 'relay_groups',
      help: 'N-way groups the bot is a member of (PROTOCOL.md §9)',
      registers,
      collect: async () => {
        const n = await this.readStore((s) => s.countGroups());
        if (n !== undefined) groups.set(n);
      },
    });
    groups.set(0);
    this.groupEvents = new Counter({
      name: 'relay_group_events_total',
      help: 'Group membership events, by kind: created, joined, members (changed), rejoined, left',
      labelNames: ['kind'],
      registers,
    });
    for (const kind of GROUP_EVENT_KINDS) this.groupEvents.labels(kind).inc(0);
    const outbox: Gauge = new Gauge({
      name: 'relay_outbox_depth',
      help: `Rows in the outbox: committed messages not yet deleted after the broker acknowledged them (counted up to ${OUTBOX_SCRAPE_LIMIT})`,
      registers,
      collect: async () => {
        const n = await this.readStore((s) => s.countOutbox().then((c) => Math.min(c, OUTBOX_SCRAPE_LIMIT)));
        if (n !== undefined) outbox.set(n);
      },
    });
    const connected: Gauge = new Gauge({
      name: 'relay_mqtt_connected',
      help: '1 while the MQTT connection to the broker is up, else 0',
      registers,
      collect: () => connected.set(this.client?.connected === true ? 1 : 0),
    });
  }

  /**
   * Starts counting the client's messages and drops, and returns the client to attach the
   * BotRuntime to (runtime.attach(metrics.instrument(client))): it counts replies and sends and
   * times the message handler.
   */
  instrument(client: MeteredClient, store: MeteredStore): AttachableClient {
    if (this.client) throw new Error('BotMetrics.instrument() was already called');
    this.client = client;
    this.store = store;
    for (const reason of Object.keys(client.drops.snapshot())) this.drops.labels(reason).inc(0);
    registerWorkMetrics(this.registry, () => client.work.snapshot());
    const onMessage = (m: ReceivedMessage): void => {
      this.messagesIn.inc();
      const replies = this.repliesOf.get(m);
      if (replies) this.messagesOut.inc(replies);
    };
    const onDrop = (d: { reason: string }): void => this.drops.labels(d.reason).inc();
    const onPow = (p: { seconds: number }): void => this.powMining.observe(p.seconds);
    const onGroup = (e: GroupEvent): void => this.groupEvents.labels(e.kind).inc();
    const onQuarantine = (): void => this.quarantined.inc();
    client.on('message', onMessage);
    client.on('drop', onDrop);
    client.on('pow', onPow);
    client.on('group', onGroup);
    client.on('quarantine', onQuarantine);
    this.listeners.push(
      () => client.off('message', onMessage),
      () => client.off('drop', onDrop),
      () => client.off('pow', onPow),
      () => client.off('group', onGroup),
      () => client.off('quarantine', onQuarantine),
    );
    const counted: AttachableClient = {
      ...this.groupApi(client),
      userId: client.userId,
      get connected() {
        return client.connected;
      },
      send: async (...args: Parameters<RelayClient['send']>) => {
        const r = await client.send(...args);
        this.messagesOut.inc();
        return r;
      },
      setMessageHandler: (handler) => {
        if (!handler) return client.setMessageHandler(undefined);
        client.setMessageHandler(async (message, reply, tx) => {
          let replies = 0;
          const end = this.handlerDuration.startTimer();
          let outcome = 'error';
          try {
            // The client may run the handler again after a write conflict, with a new message
            // object; only the run whose message is committed ('message' event) is counted.
            await handler(
              message,
              (r) => {
                replies++;
                reply(r);
              },
              tx,
            );
            outcome = 'ok';
          } finally {
            end({ outcome });
            this.repliesOf.set(message, replies);
          }
        });
      },
      on: ((event: 'session', fn: never) => client.on(event, fn)) as AttachableClient['on'],
      off: ((event: 'session', fn: never) => client.off(event, fn)) as AttachableClient['off'],
    };
    return counted;
  }

  /** The client's group API for the runtime (without it the bot could not work in groups). */
  private groupApi(client: MeteredClient): GroupApi {
    return {
      createGroup: (members, opts) => client.createGroup(members, opts),
      addToGroup: (groupId, userIds) => client.addToGroup(groupId, userIds),
      removeFromGroup: (groupId, userIds) => client.removeFromGroup(groupId, userIds),
      leaveGroup: (groupId) => client.leaveGroup(groupId),
      sendToGroup: async (groupId, message) => {
        const r = await client.sendToGroup(groupId, message);
        this.messagesOut.inc();
        return r;
      },
      group: (groupId) => client.group(groupId),
      groups: () => client.groups(),
    };
  }

  /** /healthz: 'running' after markRunning(), until markStopping(). */
  markRunning(): void {
    this.state = 'running';
  }

  markStopping(): void {
    this.state = 'stopping';
  }

  async health(): Promise<Health> {
    const details = this.replicaDetails();
    if (this.state !== 'running') return { ok: false, reason: this.state, ...details };
    // Said before the link's state: it is why this replica does none of its duties.
    if (this.replica?.fenced === true)
      return {
        ok: false,
        reason:
          'replica: fenced (the broker link was down longer than replica.fenceAfterMs; it rejoins once the link is back)',
        ...details,
      };
    if (!this.client?.connected)
      return { ok: false, reason: 'mqtt: not connected to the broker', ...details };
    try {
      await withTimeout(this.store!.countOutbox(), this.storeTimeoutMs, 'the store');
    } catch (e) {
      return { ok: false, reason: `store: ${errorText(e)}`, ...details };
    }
    return { ok: true, ...details };
  }

  private replicaDetails(): { details?: string[] } {
    if (!this.replica) return {};
    // Its session lease (mqtt-session/<client id>) is a long name and no duty: a line of its own.
    const owned = this.replica.owned().filter((name) => !isSessionLease(name));
    const session = this.replica.owned().some(isSessionLease);
    return {
      details: [
        `replica: ${this.replica.replicaId}`,
        `leases: ${owned.length > 0 ? owned.join(', ') : 'none'}`,
        `session: ${session ? 'held' : 'not held'}`,
        ...(this.replica.fenced !== undefined ? [`fenced: ${this.replica.fenced ? 'yes' : 'no'}`] : []),
      ],
    };
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Removes the client listeners. */
  detach(): void {
    for (const off of this.listeners.splice(0)) off();
  }

  private async readStore(read: (s: MeteredStore) => Promise<number>): Promise<number | undefined> {
    if (!this.store) return undefined;
    try {
      return await withTimeout(read(this.store), this.storeTimeoutMs, 'the store');
    } catch {
      // Keep the last value; /healthz reports the store's failure.
      return undefined;
    }
  }
}

export interface MetricsServer {
  /** e.g. http://127.0.0.1:9464 */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

async function respond(metrics: BotMetrics, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const send = (status: number, type: string, body: string): void => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  if (url.pathname !== '/metrics' && url.pathname !== '/healthz') {
    send(404, 'text/plain; charset=utf-8', 'not found: try /metrics or /healthz\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    send(405, 'text/plain; charset=utf-8', 'method not allowed\n');
    return;
  }
  if (url.pathname === '/healthz') {
    const h = await metrics.health();
    const lines = [h.ok ? 'ok' : h.reason, ...(h.details ?? [])];
    send(h.ok ? 200 : 503, 'text/plain; charset=utf-8', `${lines.join('\n')}\n`);
    return;
  }
  send(200, metrics.contentType, await metrics.metrics());
}

/** Serves /metrics and /healthz on host:port (port 0: any free port; see MetricsServer.port). */
export async function startMetricsServer(
  metrics: BotMetrics,
  opts: { host: string; port: number },
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    respond(metrics, req, res).catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`error: ${errorText(e)}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
