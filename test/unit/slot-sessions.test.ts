/**
 * Draining dead replicas' broker sessions (framework/relay/slot-sessions.ts, issue 13): which
 * replicas are drained, that what the session held goes through the inbound path before the
 * shared filters are unsubscribed and the session forgotten, and that a takeover by the slot's own
 * replica stops the drain without forgetting its session.
 */
import { pino } from 'pino';
import type { LeaseRecord, ReplicaRecord } from '../../framework/relay/lease-store.js';
import { DeadReplicas } from '../../framework/relay/dead-replicas.js';
import {
  slotsToDrain,
  SlotSessions,
  type DrainConnection,
  type SlotSessionsDeps,
} from '../../framework/relay/slot-sessions.js';
import type { InboundMessage } from '../../framework/relay/transport-types.js';
import { clientIdOfReplica } from '../../framework/relay/broker-client-id.js';

const user = 'ab'.repeat(32);
const rec = (replicaId: string, live: boolean, lastSeen = 1): ReplicaRecord => ({
  replicaId,
  live,
  lastSeen,
  startedAt: 0,
});
const msg = (n: number) =>
  ({ topic: `t/${n}`, payload: new Uint8Array([n]), qos: 1 }) as unknown as InboundMessage;

/** A broker session holding `queued` messages, handed out right after connect. */
class FakeSession implements DrainConnection {
  readonly log: string[] = [];
  connected = false;
  private handler: ((m: InboundMessage) => Promise<void>) | undefined;
  private readonly closeListeners = new Set<() => void>();
  constructor(
    private readonly queued: InboundMessage[],
    private readonly onConnected: (s: FakeSession) => void = () => undefined,
  ) {}
  onMessage(h: (m: InboundMessage) => Promise<void>): void {
    this.handler = h;
  }
  async connect(): Promise<{ sessionPresent: boolean }> {
    this.connected = true;
    this.log.push('connect');
    setImmediate(() => {
      for (const m of this.queued) void this.handler!(m).then(() => this.log.push(`ack ${m.topic}`));
      this.onConnected(this);
    });
    return { sessionPresent: this.queued.length > 0 };
  }
  once(_event: 'close', fn: () => void): void {
    this.closeListeners.add(fn);
  }
  off(_event: 'close', fn: () => void): void {
    this.closeListeners.delete(fn);
  }
  async unsubscribe(filter: string): Promise<void> {
    this.log.push(`unsubscribe ${filter}`);
  }
  async end(opts: { forgetSession?: boolean }): Promise<void> {
    if (!this.connected) return;
    this.connected = false;
    this.log.push(opts.forgetSession ? 'disconnect, session expiry 0' : 'disconnect');
    for (const fn of [...this.closeListeners]) fn();
  }
}

/** The registry of `replicas` as bots/0 reads it, with no slot leases. */
function registry(replicas: ReplicaRecord[], leases: LeaseRecord[] = []): DeadReplicas {
  return new DeadReplicas({
    registry: { listReplicas: async () => replicas, listLeases: async () => leases },
    self: 'bots/0',
    staleAfterMs: 15_000,
  });
}

function deps(over: Partial<SlotSessionsDeps>): SlotSessionsDeps {
  return {
    dead: registry([]),
    owns: () => true,
    clientIdOf: (r) => clientIdOfReplica(user, 'bots', r),
    open: () => new FakeSession([]),
    receive: async () => undefined,
    sharedFilters: () => ['$share/bots/p/inbox', '$share/bots/p/g/1'],
    quietMs: 50,
    log: pino({ level: 'silent' }),
    ...over,
  };
}

test('dead replicas other than this one are drained, once per heartbeat they had', async () => {
  const replicas = [
    rec('bots/0', false),
    rec('bots/1', true),
    rec('bots/2', false, 7),
    rec('bots/3', false, 9),
  ];
  const drained = new Map([['bots/3', 9]]);
  const { dead } = await registry(replicas).read();
  expect(slotsToDrain(dead, drained).map((r) => r.replicaId)).toEqual(['bots/2']);
  // It ran again and died again: a new heartbeat, drained again.
  drained.set('bots/2', 7);
  expect(slotsToDrain([rec('bots/2', false, 8)], drained).map((r) => r.replicaId)).toEqual(['bots/2']);
});

test("a replica id names its slot's client id, or the client id it was configured with", () => {
  expect(clientIdOfReplica(user, 'bots', { replicaId: 'bots/2' })).toBe(`relay-${user}-2`);
  expect(clientIdOfReplica(user, 'bots', { replicaId: 'bots/worker-a' })).toBe('worker-a');
  expect(clientIdOfReplica(user, 'bots', { replicaId: 'other/2' })).toBeUndefined();
  expect(clientIdOfReplica(user, 'bots', { replicaId: 'bots/' })).toBeUndefined();
});

test('the queued messages are processed and acknowledged, then the filters go, then the session', async () => {
  const received: string[] = [];
  const session = new FakeSession([msg(1), msg(2), msg(3)]);
  const opened: string[] = [];
  const slots = new SlotSessions(
    deps({
      dead: registry([rec('bots/0', true), rec('bots/2', false)]),
      open: (clientId) => {
        opened.push(clientId);
        return session;
      },
      receive: async (m) => {
        await new Promise((r) => setTimeout(r, 20));
        received.push(m.topic);
      },
    }),
  );
  const [outcome] = await slots.sweep();
  expect(opened).toEqual([`relay-${user}-2`]);
  expect(outcome).toEqual({ clientId: `relay-${user}-2`, messages: 3, forgotten: true });
  expect(received).toEqual(['t/1', 't/2', 't/3']);
  expect(session.log).toEqual([
    'connect',
    'ack t/1',
    'ack t/2',
    'ack t/3',
    'unsubscribe $share/bots/p/inbox',
    'unsubscribe $share/bots/p/g/1',
    'disconnect, session expiry 0',
  ]);
  // Drained at that heartbeat: the next sweep leaves it alone.
  expect(await slots.sweep()).toEqual([]);
  expect(opened).toHaveLength(1);
});

test('no session at the broker: forgotten at once, nothing unsubscribed', async () => {
  const session = new FakeSession([]);
  const slots = new SlotSessions(deps({ open: () => session }));
  expect(await slots.drain('c')).toEqual({ clientId: 'c', messages: 0, forgotten: true });
  expect(session.log).toEqual(['connect', 'disconnect, session expiry 0']);
});

test("the slot's own replica taking its session back stops the drain; the session is kept", async () => {
  // The broker closes the drain connection (client-id takeover) while the messages are in hand.
  const session = new FakeSession([msg(1)], (s) => {
    s.connected = false;
  });
  const slots = new SlotSessions(
    deps({
      dead: registry([rec('bots/2', false)]),
      open: () => session,
    }),
  );
  const [outcome] = await slots.sweep();
  expect(outcome).toEqual({ clientId: `relay-${user}-2`, messages: 1, forgotten: false });
  expect(session.log).not.toContain('disconnect, session expiry 0');
  expect(session.log.some((l) => l.startsWith('unsubscribe'))).toBe(false);
});

test('nothing is drained without the duty', async () => {
  const opened: string[] = [];
  const slots = new SlotSessions(
    deps({
      owns: () => false,
      dead: registry([rec('bots/2', false)]),
      open: (id) => {
        opened.push(id);
        return new FakeSession([]);
      },
    }),
  );
  expect(await slots.sweep()).toEqual([]);
  expect(opened).toEqual([]);
});

test("a dead auto replica's client id comes from the slot lease it held; a slot retaken since is not its", async () => {
  const lease = (name: string, holder: string, live: boolean): LeaseRecord => ({
    name,
    holder,
    acquiredAt: 0,
    expiresAt: 1,
    live,
  });
  const reading = await registry(
    [rec('bots/host-1a2b', false), rec('bots/host-3c4d', false), rec('bots/host-5e6f', true)],
    [
      lease('replica-slot/4', 'bots/host-1a2b', false),
      lease('replica-slot/0', 'bots/host-5e6f', true),
      lease('scheduler', 'bots/host-3c4d', false),
    ],
  ).read(true);
  expect(reading.dead.map((r) => [r.replicaId, r.slot])).toEqual([
    ['bots/host-1a2b', 4],
    ['bots/host-3c4d', undefined],
  ]);
  expect(clientIdOfReplica(user, 'bots', reading.dead[0]!)).toBe(`relay-${user}-4`);
  const opened: string[] = [];
  const slots = new SlotSessions(
    deps({
      dead: registry([rec('bots/host-1a2b', false)], [lease('replica-slot/4', 'bots/host-1a2b', false)]),
      open: (id) => {
        opened.push(id);
        return new FakeSession([]);
      },
    }),
  );
  await slots.sweep();
  expect(opened).toEqual([`relay-${user}-4`]);
});

test('a sweep with every replica alive reads the registry in one statement: the slot leases only when one is dead (issue 13)', async () => {
  let leaseListings = 0;
  const dead = (replicas: ReplicaRecord[]) =>
    new DeadReplicas({
      registry: {
        listReplicas: async () => replicas,
        listLeases: async () => {
          leaseListings++;
          return [];
        },
      },
      self: 'bots/0',
      staleAfterMs: 15_000,
    });
  const opened: string[] = [];
  const open = (id: string) => {
    opened.push(id);
    return new FakeSession([]);
  };
  await new SlotSessions(deps({ dead: dead([rec('bots/0', true), rec('bots/1', true)]), open })).sweep();
  expect(leaseListings).toBe(0);
  expect(opened).toEqual([]);
  await new SlotSessions(deps({ dead: dead([rec('bots/0', true), rec('bots/1', false)]), open })).sweep();
  expect(leaseListings).toBe(1);
  expect(opened).toEqual([`relay-${user}-1`]);
});

test('a dead replica whose session lease is held (alive, only late) is not connected to; a taken one is released after', async () => {
  const opened: string[] = [];
  const claims: string[] = [];
  const slots = new SlotSessions(
    deps({
      dead: registry([rec('bots/1', false), rec('bots/2', false)]),
      open: (id) => {
        opened.push(id);
        return new FakeSession([]);
      },
      // bots/1 still renews its lease; bots/2's lapsed.
      claim: async (clientId) => {
        claims.push(`claim ${clientId}`);
        if (clientId.endsWith('-1')) return undefined;
        return {
          keep: async () => true,
          release: async () => void claims.push(`release ${clientId}`),
        };
      },
    }),
  );
  const outcomes = await slots.sweep();
  expect(opened).toEqual([`relay-${user}-2`]);
  expect(outcomes).toEqual([{ clientId: `relay-${user}-2`, messages: 0, forgotten: true }]);
  expect(claims).toEqual([`claim relay-${user}-1`, `claim relay-${user}-2`, `release relay-${user}-2`]);
});

test('a drain whose claim is lost stops at once: nothing unsubscribed, the session kept for its replica', async () => {
  let held = true;
  const session = new FakeSession([msg(1)], () => {
    held = false;
  });
  const slots = new SlotSessions(deps({ open: () => session }));
  const outcome = await slots.drain('c', { keep: async () => held, release: async () => undefined });
  expect(outcome).toEqual({ clientId: 'c', messages: 1, forgotten: false });
  expect(session.log.some((l) => l.startsWith('unsubscribe'))).toBe(false);
  expect(session.log).not.toContain('disconnect, session expiry 0');
});

test('a replica beating again ends the wait for a pause: its session is unsubscribed and forgotten', async () => {
  // Messages keep coming (the share group goes on routing them here): never a pause of quietMs.
  const session = new FakeSession([msg(1)]);
  let back = false;
  const slots = new SlotSessions(deps({ open: () => session, quietMs: 60_000 }));
  setTimeout(() => (back = true), 200);
  const outcome = await slots.drain('c', undefined, async () => back);
  expect(outcome).toEqual({ clientId: 'c', messages: 1, forgotten: true });
  expect(session.log.slice(-3)).toEqual([
    'unsubscribe $share/bots/p/inbox',
    'unsubscribe $share/bots/p/g/1',
    'disconnect, session expiry 0',
  ]);
});
