/**
 * What a protocol step may use (STYLE.md §2): the MLS context, our own user id and the clock. No
 * store, no transport, no emitter: a step returns what the shell is to commit, emit or drop.
 */
import type { UserId } from '../brand.js';
import type { Clock } from '../clock.js';
import type * as mls from '../mls/index.js';

export interface StepContext {
  mls: mls.MlsContext;
  selfId: UserId;
  clock: Clock;
}
