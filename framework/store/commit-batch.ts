/**
 * Group commit across conversations (issue 12), Postgres only: commits of DIFFERENT conversations
 * that arrive while an earlier one is being written go to the database together, as one statement
 * (folded-commit.ts foldedBatch): one round trip, one transaction, one WAL flush for all of them.
 *
 * The guarantees are those of a commit on its own. Each caller's promise resolves only once the
 * statement holding its commit returned, that is once it is durable, so nothing built on a commit
 * (the PUBACK of the message, the publishing of its outbox rows) happens earlier. Each commit is
 * gated on its own compare-and-set, so a stale one writes nothing and gets its StaleStateError
 * while the others apply. When the statement fails as a whole, nothing of it applied, and each of
 * its commits is written again on its own, with its own outcome.
 *
 * The batch waits for nothing but the write before it: with nothing in flight a commit goes at
 * once (no timer, no added latency when idle); under load the commits that queued meanwhile, at
 * most MAX_BATCH of them, go next. Only commits that fold into one statement anyway (one stored
 * conversation, at most one outbox row: an inbound message and its reply) are batched; the others
 * run as before.
 */
import type { InboundCommit } from '../relay/store.js';
import type { AtRestCipher } from './crypto-at-rest.js';
import { foldedBatch, foldedUpdate, type FoldedCommit } from './folded-commit.js';
import type { SqlRunner } from './sql-runner.js';
import { foldsCompletely, soleStoredRow, throwConflict, versionedRow } from './versioned-row.js';

/** Commits per statement at most: bounds its text, its parameters (~40 each) and its locks. */
export const MAX_BATCH = 32;

interface Waiting {
  folded: FoldedCommit;
  resolve(): void;
  reject(e: unknown): void;
}

/** The commit as one foldable statement, when it is one (see folded-commit.ts). */
function foldable(changes: InboundCommit, cipher: AtRestCipher): FoldedCommit | undefined {
  if (!foldsCompletely(changes)) return undefined;
  const row = soleStoredRow(
    changes,
    (changes.conversations ?? []).map((r) => versionedRow(r, cipher)),
  );
  return row && { row, changes };
}

/** One per store: the queue of foldable commits and the one batch in flight. */
export class CommitBatcher {
  private waiting: Waiting[] = [];
  private writing = false;

  /**
   * @param alone writes a commit that cannot be batched (typeorm-commit.ts commitChanges).
   * @param maxBatch commits per statement at most.
   */
  constructor(
    private readonly runner: SqlRunner,
    private readonly alone: (changes: InboundCommit) => Promise<void>,
    private readonly maxBatch = MAX_BATCH,
  ) {}

  /** RelayStore.commit: resolves once `changes` is durable; `cipher` is unlocked already. */
  commit(changes: InboundCommit, cipher: AtRestCipher): Promise<void> {
    const folded = this.runner.backend === 'postgres' ? foldable(changes, cipher) : undefined;
    if (!folded) return this.alone(changes);
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ folded, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.writing || this.waiting.length === 0) return;
    const batch = this.take();
    this.writing = true;
    void this.write(batch).finally(() => {
      this.writing = false;
      this.next();
    });
  }

  /**
   * The next batch in arrival order: at most maxBatch commits with distinct conversations and
   * envelope digests (one statement may not write a row twice); the others keep their place.
   */
  private take(): Waiting[] {
    const batch: Waiting[] = [];
    const rest: Waiting[] = [];
    const keys = new Set<string>();
    for (const w of this.waiting) {
      const { row, changes } = w.folded;
      const own = [`c:${row.groupId}`, ...(changes.envelope ? [`e:${changes.envelope.digest}`] : [])];
      if (batch.length >= this.maxBatch || own.some((k) => keys.has(k))) {
        rest.push(w);
        continue;
      }
      for (const k of own) keys.add(k);
      batch.push(w);
    }
    this.waiting = rest;
    // Rows locked in one order (by group id) by every batch, as the other commits take theirs.
    return batch.sort((a, b) => (a.folded.row.groupId < b.folded.row.groupId ? -1 : 1));
  }

  private async write(batch: Waiting[]): Promise<void> {
    if (batch.length === 1) return this.writeAlone(batch[0]!);
    let matched: boolean[];
    try {
      matched = await this.runner.once((s) =>
        foldedBatch(
          s,
          batch.map((w) => w.folded),
        ),
      );
    } catch {
      // Nothing of the statement applied (a lost connection included: the retries then find their
      // rows moved on and say so): each commit again on its own, with its own outcome.
      await Promise.all(batch.map((w) => this.writeAlone(w)));
      return;
    }
    await Promise.all(
      batch.map(async (w, i) => {
        if (matched[i]) return w.resolve();
        // Its compare-and-set matched no row: why, as a commit on its own would say.
        await this.runner.once((s) => throwConflict(s, w.folded.row)).catch(w.reject);
      }),
    );
  }

  private writeAlone(w: Waiting): Promise<void> {
    const { row, changes } = w.folded;
    return this.runner.once((s) => foldedUpdate(s, row, changes)).then(w.resolve, w.reject);
  }
}
