/** Time as a dependency, so tests can move it (STYLE.md §2). */
import type { UnixSeconds } from './brand.js';

export interface Clock {
  /** Unix time in whole seconds. */
  now(): UnixSeconds;
}

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
