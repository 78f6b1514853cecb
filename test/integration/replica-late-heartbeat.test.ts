/**
 * A live replica whose heartbeat is late (issue 13): replica A's LeaseKeeper is paused for three
 * lease lengths while A's broker connection stays up and a peer keeps sending commands. B, owner of
 * DUTY.slotSessions, counts A dead by its heartbeat and drains A's broker session, which takes it
 * over from A (DISCONNECT 0x8E). Before the session claim (session-claim.ts) A's MQTT.js reconnected
 * a second later and took the session back from the drain, the next sweep took it again, and so on
 * for as long as A's heartbeat stayed late: A's connection went down again and again. Now A waits
 * for its session lease, which the drain holds: A is taken over once, gets its session back once it
 * beats again, and every command is answered exactly once.
 */
import { DUTY, MemoryRelayStore, RelayClient, type LeaseTimers } from '../../framework/relay/index.js';
import { uniqueName } from '../support/broker.js';
import { sleep } from '../support/child.js';
import { useEchoReplicas } from '../support/echo-replicas.js';
import { until } from '../support/groups.js';

const TTL_MS = 3000;

const replicas = await useEchoReplicas('the late heartbeat test', { ttlMs: TTL_MS });
const run = replicas.runnable ? test : test.skip;

/** Real timers whose callbacks wait while paused (a stalled keeper), and run on resume. */
class PausableTimers implements LeaseTimers {
  private paused = false;
  private readonly held = new Set<() => void>();

  after(ms: number, fn: () => void): () => void {
    let cancelled = false;
    const run = (): void => {
      if (!cancelled) fn();
    };
    const t = setTimeout(() => (this.paused ? this.held.add(run) : run()), ms);
    t.unref();
    return () => {
      cancelled = true;
      clearTimeout(t);
      this.held.delete(run);
    };
  }

  now(): number {
    return performance.now();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    for (const fn of [...this.held]) {
      this.held.delete(fn);
      fn();
    }
  }
}

run(
  'a replica whose heartbeat is late is taken over by a drain once, gets its session back, and no command is lost or answered twice',
  async () => {
    await replicas.onSchema(async (env) => {
      const prefix = uniqueName('late');
      const shareGroup = uniqueName('bots');
      const timersA = new PausableTimers();
      const a = await replicas.start(env, { prefix, shareGroup, slot: 0, timers: timersA });
      const duties = Object.values(DUTY).sort();
      // Its session lease (session-claim.ts) is among its leases too.
      await until(() => duties.every((d) => a.keeper.owns(d)), 10_000, 'A to own every duty');
      const b = await replicas.start(env, { prefix, shareGroup, slot: 1 });

      const peer = await RelayClient.create({
        store: new MemoryRelayStore(),
        broker: { url: replicas.broker().url },
        topicPrefix: prefix,
      });
      const got = new Map<string, number>();
      peer.on('message', (m) => {
        const text = String(m.content.content);
        got.set(text, (got.get(text) ?? 0) + 1);
      });
      await peer.start();
      replicas.onCleanup(() => peer.stop());
      await peer.send(a.client.userId, 'hello');
      await until(() => got.has('echo: hello'), 30_000, 'the first echo');
      // B holds the duties A does not: make B own slotSessions (A releases it).
      await a.keeper.drop(DUTY.slotSessions);
      await until(() => b.keeper.owns(DUTY.slotSessions), 10_000, 'B to own slotSessions');

      // A's connection, sampled: each time it is seen down counts once.
      let drops = 0;
      let wasUp = true;
      const sampler = setInterval(() => {
        const up = a.client.connected;
        if (wasUp && !up) drops++;
        wasUp = up;
      }, 20);
      replicas.onCleanup(async () => clearInterval(sampler));

      const sent: string[] = [];
      let sending = true;
      const stream = (async () => {
        for (let k = 0; sending; k++) {
          const text = `c${k}`;
          sent.push(text);
          await peer.send(a.client.userId, text);
          await sleep(150);
        }
      })();

      await sleep(1000);
      timersA.pause(); // A's heartbeat and lease renewals stop; its connection stays up
      await sleep(3.5 * TTL_MS);
      timersA.resume();
      await until(
        async () =>
          (await b.store.leases.listReplicas(TTL_MS)).some(
            (r) => r.replicaId === `${shareGroup}/0` && r.live,
          ),
        20_000,
        'A to beat again',
      );
      await until(() => a.client.connected, 30_000, 'A connected again');
      await sleep(2000);
      sending = false;
      await stream;
      await until(() => sent.every((t) => got.has(`echo: ${t}`)), 60_000, 'every command answered');
      await sleep(1500); // a second answer would come now

      // The drain took A's session over once, and A took it back once, rather than both kicking
      // each other for as long as A's heartbeat was late (6 drops before the session claim).
      expect(drops).toBe(1);
      expect(a.client.connected).toBe(true);
      expect(sent.filter((t) => got.get(`echo: ${t}`) !== 1)).toEqual([]);

      // A is subscribed again: it takes its share of new commands.
      const handledBefore = a.handled.length;
      const after = Array.from({ length: 16 }, (_, i) => `after-${i}`);
      for (const t of after) await peer.send(a.client.userId, t);
      await until(() => after.every((t) => got.has(`echo: ${t}`)), 30_000, 'the commands after');
      expect(a.handled.length).toBeGreaterThan(handledBefore);
    });
  },
  150_000,
);
