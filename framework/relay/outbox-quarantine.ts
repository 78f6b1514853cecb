/**
 * Outbox rows that can never be published (issue 10, hole 8). The outbox publishes in commit order
 * and a group commit row holds back everything after it until the broker acknowledged it, so one
 * such row would stall every later row of every conversation. Two defences:
 *
 * - at the source: a commit made for an API call (send, group changes) whose rows the transport
 *   would refuse fails with PublishTooLargeError before anything is written, and a handler reply
 *   that is too large is left out of its message's commit and reported;
 * - at publish time: a row that fails for good (too large for a broker that lowered its Maximum
 *   Packet Size, a PUBACK reason code that the same PUBLISH would get again) is quarantined with
 *   the rows that depend on it (a commit's Welcomes), so later rows go out.
 */
import type { UnixSeconds } from './brand.js';
import { HandlerError, TransportError } from './errors.js';
import type { InboundCommit, OutboxRecord, RelayStore } from './store.js';
import { PublishTooLargeError } from './transport-packet-size.js';

/** Why the transport could never publish this row, or undefined. */
export type OutboxRowCheck = (row: OutboxRecord) => Error | undefined;

/**
 * PUBACK reason codes (MQTT 5 §3.4.2.1) the broker would send again for the same PUBLISH: not
 * authorized, topic name invalid, packet too large, payload format invalid. Quota exceeded (0x97)
 * and unspecified errors may pass, so those rows are retried.
 */
const PERMANENT_PUBACK_CODES = new Set([0x87, 0x90, 0x95, 0x99]);

export function isPermanentPublishFailure(e: unknown): boolean {
  if (e instanceof PublishTooLargeError) return true;
  const cause = e instanceof TransportError ? e.cause : undefined;
  const code = (cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' && PERMANENT_PUBACK_CODES.has(code);
}

/** A commit recording an inbound message: refusing it would make the broker redeliver it for ever. */
const recordsInbound = (c: InboundCommit): boolean =>
  c.processed !== undefined || c.envelope !== undefined || c.welcome !== undefined;

/**
 * The store, with commit() refusing (PublishTooLargeError, nothing written) a commit for an API call
 * that carries a row the transport could never publish.
 */
export function withOutboxCheck(store: RelayStore, check: OutboxRowCheck): RelayStore {
  return withCommit(store, async (changes: InboundCommit): Promise<void> => {
    if (!recordsInbound(changes)) {
      for (const row of changes.outbox ?? []) {
        const error = check(row);
        if (error) throw error;
      }
    }
    return store.commit(changes);
  });
}

/**
 * The store with its commit() replaced. A Proxy rather than a wrapper class, so store methods added
 * later pass through untouched.
 */
export function withCommit(store: RelayStore, commit: RelayStore['commit']): RelayStore {
  // Each method bound once per store and function: every inbound message calls a few of them
  // through here (and through both wrappers of RelayClient's store), and a fresh bind per call
  // is an allocation per call.
  const bound = new Map<PropertyKey, { of: unknown; fn: unknown }>();
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'commit') return commit;
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const held = bound.get(prop);
      if (held?.of === value) return held.fn;
      const fn = (value as (...a: unknown[]) => unknown).bind(target);
      bound.set(prop, { of: value, fn });
      return fn;
    },
  });
}

/** The error to report instead of committing a handler's reply row, or undefined to keep it. */
export function refusedReply(row: OutboxRecord, check: OutboxRowCheck): HandlerError | undefined {
  const error = check(row);
  return error && new HandlerError(`reply not sent: ${error.message}`, { cause: error });
}

export interface QuarantineNote {
  id: string;
  topic: string;
  reason: string;
}

/**
 * Sorts one publish round's failures: rows that failed for good are quarantined (with their
 * dependents) and reported; the first other failure is returned for the caller to retry.
 */
export async function settleFailures(
  rows: readonly OutboxRecord[],
  results: readonly PromiseSettledResult<void>[],
  store: RelayStore,
  now: UnixSeconds,
  report: (note: QuarantineNote) => void,
): Promise<unknown> {
  const permanent: QuarantineNote[] = [];
  let retry: unknown;
  rows.forEach((row, i) => {
    const result = results[i]!;
    if (result.status === 'fulfilled') return;
    if (isPermanentPublishFailure(result.reason)) {
      permanent.push({ id: row.id, topic: row.topic, reason: (result.reason as Error).message });
    } else retry ??= result.reason ?? new TransportError('publish failed');
  });
  if (permanent.length > 0) {
    await store.quarantineOutbox(
      permanent.map((p) => p.id),
      now,
    );
    for (const p of permanent) report(p);
  }
  return retry;
}
