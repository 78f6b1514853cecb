/**
 * What follows a conversation's commit (ARCHITECTURE.md "One inbound message", step 7): once the
 * broker acknowledged the commit's outbox rows, its events, then its follow-ups. It runs outside the
 * conversation's lane, so the lane takes the next message as soon as the commit is durable (and an
 * inbound message is acknowledged before our publishing), and per conversation in commit order, so
 * the events keep the order of the commits they report.
 */

/** How the rows of a commit are published, and where a failed follow-up is reported. */
export interface AfterCommitDeps {
  /** Publishes the committed outbox rows; resolves once the broker acknowledged them. */
  publish(): Promise<void>;
  fail(e: unknown): void;
}

/** Per-conversation queues of the work that follows a commit; the shells' only holder of it. */
export class AfterCommit {
  /** Conversation key → the end of its queued work (never rejects). */
  private readonly tails = new Map<string, Promise<void>>();

  constructor(private readonly deps: AfterCommitDeps) {}

  /**
   * Called right after the commit, still in the conversation's lane, so the queue order is the
   * commit order. With `rows` the commit's rows start publishing at once and `then` (events,
   * follow-ups) waits for their acknowledgement. Resolves once `then` ran; when publishing failed
   * it rejects with that error, `then` having run anyway: the rows are committed and the outbox
   * retries them, so the commit's events are not held back for ever.
   */
  run(key: string, rows: boolean, then: () => void | Promise<void>): Promise<void> {
    // Settled here at once, so a failure is never an unhandled rejection while earlier work runs.
    const published = rows
      ? this.deps.publish().then(
          () => undefined,
          (e: unknown) => ({ e }),
        )
      : undefined;
    const done = (this.tails.get(key) ?? Promise.resolve()).then(async () => {
      const failure = await published;
      try {
        await then();
      } catch (e) {
        this.deps.fail(e);
      }
      if (failure) throw failure.e;
    });
    // The queue goes on after a failure; a caller who does not wait sees no unhandled rejection.
    const tail = done.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return done;
  }

  /** Resolves once everything queued so far (and queued meanwhile) has run. */
  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all(this.tails.values());
  }
}

/** Waits for all of `pending`; rejects with the first failure once every one has settled. */
export async function allRan(pending: readonly Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(pending);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}
