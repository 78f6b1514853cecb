// Retrying a failed group message in its lane (lane-retry.ts): bounded, and ended by stopping.
import { pino } from 'pino';
import { LaneRetry } from '../../framework/relay/lane-retry.js';

const log = pino({ level: 'silent' });

function failing(times: number): { work: () => Promise<string>; calls: () => number } {
  let calls = 0;
  return {
    work: async () => {
      calls++;
      if (calls <= times) throw new Error(`failure ${calls}`);
      return 'done';
    },
    calls: () => calls,
  };
}

test('retries a failure after each delay and returns the first success', async () => {
  const f = failing(2);
  await expect(new LaneRetry(log, () => true, [1, 1, 1]).run(f.work)).resolves.toBe('done');
  expect(f.calls()).toBe(3);
});

test('gives up after the last delay with the last error', async () => {
  const f = failing(10);
  await expect(new LaneRetry(log, () => true, [1, 1]).run(f.work)).rejects.toThrow('failure 3');
  expect(f.calls()).toBe(3);
});

test('a stopped client retries nothing, and stopping ends a wait at once', async () => {
  const f = failing(10);
  await expect(new LaneRetry(log, () => false, [1]).run(f.work)).rejects.toThrow('failure 1');
  let running = true;
  const retry = new LaneRetry(log, () => running, [3_600_000]);
  const g = failing(10);
  const result = retry.run(g.work);
  await new Promise((r) => setImmediate(r));
  running = false;
  retry.wakeAll();
  await expect(result).rejects.toThrow('failure 1');
  expect(g.calls()).toBe(1);
});
