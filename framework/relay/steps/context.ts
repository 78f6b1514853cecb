/**
 * What a protocol step may use (STYLE.md §2): the MLS context, our own user id, the clock and the
 * random source. No store, no transport, no emitter: a step returns what the shell is to commit,
 * emit or drop.
 */
import type { UserId } from '../brand.js';
import type { Clock } from '../clock.js';
import type * as mls from '../mls/index.js';
import type { Random } from '../random.js';

export interface StepContext {
  mls: mls.MlsContext;
  selfId: UserId;
  clock: Clock;
  /** Ids of the outbox rows and replies a step makes. */
  random: Random;
}
