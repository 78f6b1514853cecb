/** Time as a dependency, so tests can move it (STYLE.md §2). */
import type { UnixSeconds } from './brand.js';

/**
 * Source of the current time for everything time-dependent (sent_at window, bundle issued_at, KeyPackage
 * lifetime, access-token hour buckets); inject a ManualClock in tests.
 */
export interface Clock {
  /** Unix time in whole seconds. */
  now(): UnixSeconds;
}

/** The real clock: Date.now() rounded down to whole seconds. The default wherever a Clock is optional. */
export const systemClock: Clock = { now: () => Math.floor(Date.now() / 1000) as UnixSeconds };

/** A clock tests set by hand. */
export class ManualClock implements Clock {
  constructor(private seconds: number) {}
  now(): UnixSeconds {
    return this.seconds as UnixSeconds;
  }
  set(seconds: number): void {
    this.seconds = seconds;
  }
  advance(seconds: number): void {
    this.seconds += seconds;
  }
}
