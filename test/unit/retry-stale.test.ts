// Retrying work on fresh state after StaleStateError (retry-stale.ts, issue 13): a message is never
// given up for staleness; retries after the first ones are paced with jittered, capped delays.
import { StaleStateError, StorageError } from '../../framework/relay/errors.js';
import { retryStale, STALE_RETRY_MAX_MS } from '../../framework/relay/retry-stale.js';

function losing(times: number) {
  let calls = 0;
  return {
    work: async () => {
      calls++;
      if (calls <= times) throw new StaleStateError('g', calls, calls + 1);
      return 'done';
    },
    calls: () => calls,
  };
}

test('work that loses the race 20 times in a row is retried until it wins', async () => {
  const w = losing(20);
  const delays: number[] = [];
  const sleep = async (ms: number) => void delays.push(ms);
  await expect(retryStale(w.work, { sleep })).resolves.toBe('done');
  expect(w.calls()).toBe(21);
  // The first retry follows at once; the later ones wait, never longer than the cap.
  expect(delays.length).toBeGreaterThan(0);
  expect(delays.length).toBeLessThan(20);
  expect(Math.max(...delays)).toBeLessThanOrEqual(STALE_RETRY_MAX_MS);
  expect(delays.every((d) => d >= 0)).toBe(true);
});

test('the delays are jittered, so two replicas losing together do not retry in step', async () => {
  const runs = await Promise.all(
    [0.1, 0.9].map(async (r) => {
      const delays: number[] = [];
      await retryStale(losing(10).work, { sleep: async (ms) => void delays.push(ms), random: () => r });
      return delays;
    }),
  );
  expect(runs[0]).not.toEqual(runs[1]);
});

test('any other error ends the retries at once', async () => {
  let calls = 0;
  const work = async () => {
    calls++;
    if (calls === 1) throw new StaleStateError('g', 1, 2);
    throw new StorageError('database gone');
  };
  await expect(retryStale(work, { sleep: async () => undefined })).rejects.toThrow('database gone');
  expect(calls).toBe(2);
});

test('a caller may still bound the attempts', async () => {
  const w = losing(10);
  await expect(retryStale(w.work, { attempts: 3, sleep: async () => undefined })).rejects.toBeInstanceOf(
    StaleStateError,
  );
  expect(w.calls()).toBe(3);
});
