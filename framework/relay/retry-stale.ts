import { StaleStateError } from './errors.js';

/**
 * Another process (or a stale cache) moved the conversation on between our read and our commit:
 * nothing was written, so redo the work on the state the store now holds.
 */
export async function retryStale<T>(work: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await work();
    } catch (e) {
      if (!(e instanceof StaleStateError) || i >= attempts) throw e;
    }
  }
}
