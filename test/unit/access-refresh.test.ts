// Reloading the access index for replicas (access-refresh.ts): a caller always gets a reload that
// started after its call, reloads never overlap, and the number of waiting callers is bounded.
import { ACCESS_RELOAD_MAX_WAITING_ENVELOPES, AccessRefresh } from '../../framework/relay/access-refresh.js';
import { accessReload } from '../../framework/relay/replica-wiring.js';

function counter() {
  let started = 0;
  let running = 0;
  let overlapped = false;
  const gates: Array<() => void> = [];
  return {
    reload: () => {
      started++;
      running++;
      if (running > 1) overlapped = true;
      return new Promise<void>((resolve) =>
        gates.push(() => {
          running--;
          resolve();
        }),
      );
    },
    finishOne: async () => {
      for (let i = 0; i < 20 && gates.length === 0; i++) await new Promise((r) => setTimeout(r, 1));
      gates.shift()?.();
      await new Promise((r) => setTimeout(r, 1));
    },
    get started() {
      return started;
    },
    get overlapped() {
      return overlapped;
    },
  };
}

test('a caller arriving during a reload waits for the next one; callers meanwhile share it', async () => {
  const c = counter();
  const refresh = new AccessRefresh({ reload: c.reload, minIntervalMs: 0 });
  const first = refresh.request();
  await new Promise((r) => setTimeout(r, 1));
  expect(c.started).toBe(1);
  let secondDone = false;
  const second = refresh.request().then((r) => ((secondDone = true), r));
  const third = refresh.request();
  await c.finishOne(); // the first reload ends: it may have listed the store before the second call
  expect(await first).toBe(true);
  expect(secondDone).toBe(false);
  expect(c.started).toBe(2); // one more reload for both later callers
  await c.finishOne();
  expect(await second).toBe(true);
  expect(await third).toBe(true);
  expect(c.started).toBe(2);
  expect(c.overlapped).toBe(false);
});

test('reloads start at least minIntervalMs apart', async () => {
  let now = 1000;
  const starts: number[] = [];
  const refresh = new AccessRefresh({
    reload: async () => void starts.push(now),
    nowMs: () => now,
    minIntervalMs: 30,
  });
  await refresh.request();
  now += 5;
  const later = refresh.request();
  // The second reload waits out the interval in real time (about 25 ms) before it starts.
  await new Promise((r) => setTimeout(r, 5));
  expect(starts).toEqual([1000]);
  now += 40;
  await later;
  expect(starts).toHaveLength(2);
});

test('beyond maxWaiting callers, a request is refused at once instead of holding a window slot', async () => {
  const c = counter();
  const refresh = new AccessRefresh({ reload: c.reload, minIntervalMs: 0, maxWaiting: 2 });
  const a = refresh.request();
  const b = refresh.request();
  expect(await refresh.request()).toBe(false);
  await c.finishOne();
  await c.finishOne();
  expect(await a).toBe(true);
  expect(await b).toBe(true);
  // Slots are free again.
  const d = refresh.request();
  await c.finishOne();
  expect(await d).toBe(true);
});

test('a failing reload still resolves (the caller re-checks and drops)', async () => {
  const refresh = new AccessRefresh({ reload: () => Promise.reject(new Error('db down')), minIntervalMs: 0 });
  expect(await refresh.request()).toBe(true);
});

test('envelopes with one hint wait together: a burst from one peer is not refused past maxWaiting', async () => {
  // A peer's burst right after its first contact on another replica: every envelope carries the
  // same unknown hint (netns replicas test lost the later ones of 10 as 'pow' when each counted).
  const c = counter();
  const refresh = new AccessRefresh({ reload: c.reload, minIntervalMs: 0, maxWaiting: 2 });
  const burst = Array.from({ length: 10 }, () => refresh.request('aabbccdd'));
  const other = refresh.request('11223344');
  // Distinct hints stay bounded: a third one is refused at once.
  expect(await refresh.request('55667788')).toBe(false);
  await c.finishOne();
  await c.finishOne();
  expect(await Promise.all(burst)).toEqual(Array(10).fill(true));
  expect(await other).toBe(true);
});

test('envelopes waiting in all are bounded by maxWaitingEnvelopes, one hint or many', async () => {
  const c = counter();
  const refresh = new AccessRefresh({
    reload: c.reload,
    minIntervalMs: 0,
    maxWaiting: 2,
    maxWaitingEnvelopes: 3,
  });
  const waiting = [refresh.request('aabbccdd'), refresh.request('aabbccdd'), refresh.request('11223344')];
  expect(await refresh.request('aabbccdd')).toBe(false);
  await c.finishOne();
  await c.finishOne();
  expect(await Promise.all(waiting)).toEqual([true, true, true]);
});

test("a drain connection has its own bounds: the own transport's full budget refuses none of its envelopes", async () => {
  // issue 13: a drain's backlog counted against the own transport's bounds and was dropped as 'pow'.
  const c = counter();
  const refresh = new AccessRefresh({
    reload: c.reload,
    minIntervalMs: 0,
    maxWaiting: 1,
    maxWaitingEnvelopes: 2,
    drain: { maxWaiting: 2, maxWaitingEnvelopes: 3 },
  });
  const own = [refresh.request('aabbccdd'), refresh.request('aabbccdd')];
  expect(await refresh.request('aabbccdd')).toBe(false); // the own window's bound holds
  const drain = [
    refresh.request('aabbccdd', 'drain'),
    refresh.request('11223344', 'drain'),
    refresh.request('11223344', 'drain'),
  ];
  // The drain's own bounds hold too: a third hint, a fourth envelope.
  expect(await refresh.request('55667788', 'drain')).toBe(false);
  expect(await refresh.request('11223344', 'drain')).toBe(false);
  await c.finishOne();
  await c.finishOne();
  expect(await Promise.all([...own, ...drain])).toEqual(Array(5).fill(true));
  // Reloads are shared: the database sees no more listings than with one connection.
  expect(c.started).toBe(2);
  expect(c.overlapped).toBe(false);
});

test("the client's reload (accessReload) passes the connection on: the own bound full, a drain's envelope still waits", async () => {
  let reloads = 0;
  const reload = accessReload({ restore: async () => void reloads++ });
  // A request takes its place at once, before its first await: the 33rd own one is refused.
  const own = Array.from({ length: ACCESS_RELOAD_MAX_WAITING_ENVELOPES }, () => reload('aabbccdd'));
  const refused = reload('aabbccdd');
  const drain = reload('aabbccdd', 'drain');
  expect(await refused).toBe(false);
  expect(await Promise.all([...own, drain])).toEqual(
    Array(ACCESS_RELOAD_MAX_WAITING_ENVELOPES + 1).fill(true),
  );
  expect(reloads).toBeLessThanOrEqual(2);
});
