/**
 * A seeded pseudo-random source for chaos tests: the seed is printed at start, and the same seed
 * replays the same choices (which replica dies, when, who sends what). mulberry32: 32-bit state,
 * plenty for picking moments and replicas.
 */

export interface SeededRandom {
  readonly seed: number;
  /** A float in [0, 1). */
  next(): number;
  /** A whole number in [min, max]. */
  int(min: number, max: number): number;
  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T;
}

/** The seed from `RELAY_CHAOS_SEED` (a whole number), else a fresh one. Bad input names the fix. */
export function chaosSeed(raw: string | undefined = process.env.RELAY_CHAOS_SEED): number {
  if (raw === undefined || raw === '') return Math.floor(Math.random() * 2 ** 32);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0 || n >= 2 ** 32)
    throw new Error(`RELAY_CHAOS_SEED must be a whole number in [0, 2^32), got ${JSON.stringify(raw)}`);
  return n;
}

export function seededRandom(seed: number): SeededRandom {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return {
    seed,
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: (items) => {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[Math.floor(next() * items.length)]!;
    },
  };
}
