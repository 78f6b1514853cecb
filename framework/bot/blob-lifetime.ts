/**
 * Attachment blobs a bot uploaded are deleted once their lifetime is over (issue #14: a sender's
 * store grew forever). Each upload is recorded in the bot's durable data under
 *
 *   blobs:<bot>:<expiry in ms, 15 digits>:<id>   →   {"url":"<the blob's URL>"}
 *
 * written on its own (a data-only RelayStore.commit) right after the upload and BEFORE the URL
 * can be sent, not with the message that carries it: a handler that fails, times out, or is run
 * again after a stale commit uploaded a blob that no committed message names, and a row committed
 * with the message would be lost with it. Recorded first, every uploaded blob is deleted in time
 * whether its message went out or not. What remains: a process that dies between the upload's
 * response and the row's commit (milliseconds) leaves that one blob; a bucket lifecycle rule
 * longer than the lifetime is the backstop (docs/agents.md).
 *
 * The owner of DUTY.scheduler (one replica among several; a single process always) sweeps every
 * sweepMs: rows sort by expiry, so a pass reads them in order, deletes each expired blob
 * (BlobStore.delete: a missing one is fine) and then its row; a failed delete keeps the row for the
 * next pass. Receivers download promptly; one that comes later gets `attachment_missing`.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { BlobStore } from '../relay/attachments/index.js';
import { ArgumentError } from '../relay/errors.js';
import { TOMBSTONE } from './data.js';

/** How long an uploaded blob is kept by default: 30 days. */
export const DEFAULT_BLOB_TTL_SECONDS = 30 * 24 * 3600;
/** How often the duty's owner looks for expired blobs by default: hourly. */
export const DEFAULT_BLOB_SWEEP_MS = 3600_000;
const EXPIRY_DIGITS = 15;

/** The conversation-data key prefix of a bot's blob rows. */
export const blobPrefix = (bot: string): string => `blobs:${bot}:`;

/** What the lifetime needs of the store: list rows by prefix, and commit data on its own. */
export interface BlobLedgerStore {
  listConversationData(prefix: string): Promise<Array<{ conversationId: string; json: string }>>;
  commit(changes: { conversationData: Array<{ conversationId: string; json: string }> }): Promise<void>;
}

/** The store as a BlobLedgerStore when it can commit data on its own (a RelayStore can). */
export function blobLedgerOf(store: unknown): BlobLedgerStore | undefined {
  const s = store as Partial<BlobLedgerStore> | undefined;
  return typeof s?.listConversationData === 'function' && typeof s.commit === 'function'
    ? (s as BlobLedgerStore)
    : undefined;
}

/** BlobLifetime's options. */
export interface BlobLifetimeOptions {
  bot: string;
  ledger: BlobLedgerStore;
  blobs: BlobStore;
  /** How long a blob is kept after its upload, in seconds (≥ 1). */
  ttlSeconds: number;
  /** ms since the epoch. */
  now: () => number;
  log: Logger;
  /** Whether this process owns the sweeping duty now (DUTY.scheduler); default always. */
  owns?: () => boolean;
  sweepMs?: number;
}

/** Records uploads and deletes expired blobs; see the module comment. */
export class BlobLifetime {
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<number> | undefined;
  private running = false;

  constructor(private readonly o: BlobLifetimeOptions) {
    if (!Number.isSafeInteger(o.ttlSeconds) || o.ttlSeconds < 1)
      throw new ArgumentError(`attachments.blobTtlSeconds is a whole number ≥ 1, got ${o.ttlSeconds}`);
    const every = o.sweepMs ?? DEFAULT_BLOB_SWEEP_MS;
    if (!Number.isSafeInteger(every) || every < 1)
      throw new ArgumentError(`the blob sweep interval is a whole number of ms ≥ 1, got ${every}`);
  }

  /** Records a blob just uploaded; resolves once its row is durable. */
  async record(url: string): Promise<void> {
    const expiry = String(this.o.now() + this.o.ttlSeconds * 1000).padStart(EXPIRY_DIGITS, '0');
    const key = `${blobPrefix(this.o.bot)}${expiry}:${randomUUID()}`;
    await this.o.ledger.commit({
      conversationData: [{ conversationId: key, json: JSON.stringify({ url }) }],
    });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.arm(0);
  }

  /** Stops sweeping and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.pass?.catch(() => undefined);
  }

  /** One pass (one at a time): deletes every expired blob and its row; how many were deleted. */
  sweep(): Promise<number> {
    this.pass ??= this.deleteExpired().finally(() => (this.pass = undefined));
    return this.pass;
  }

  private arm(ms: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.sweep()
        .catch((err: unknown) => this.o.log.warn({ err }, 'blob sweep failed; trying again later'))
        .finally(() => this.arm(this.o.sweepMs ?? DEFAULT_BLOB_SWEEP_MS));
    }, ms);
    this.timer.unref?.();
  }

  private async deleteExpired(): Promise<number> {
    const owns = this.o.owns ?? (() => true);
    if (!owns()) return 0;
    const prefix = blobPrefix(this.o.bot);
    const now = this.o.now();
    const rows = (await this.o.ledger.listConversationData(prefix)).sort((a, b) =>
      a.conversationId < b.conversationId ? -1 : 1,
    );
    let deleted = 0;
    for (const row of rows) {
      const expiry = Number(row.conversationId.slice(prefix.length, prefix.length + EXPIRY_DIGITS));
      if (expiry > now) break;
      // A lease lost mid-pass: the new owner deletes the rest (deleting twice is harmless).
      if (!owns()) break;
      const url = urlOf(row.json);
      if (url !== undefined) {
        try {
          await this.o.blobs.delete(url);
        } catch (err) {
          this.o.log.warn(
            { err, key: row.conversationId },
            'deleting an expired blob failed; kept for the next pass',
          );
          continue;
        }
        deleted++;
      } else if (row.json !== TOMBSTONE) {
        this.o.log.warn({ key: row.conversationId }, 'blob row without a URL removed');
      }
      await this.o.ledger.commit({
        conversationData: [{ conversationId: row.conversationId, json: TOMBSTONE }],
      });
    }
    if (deleted > 0) this.o.log.debug({ deleted }, 'expired blobs deleted');
    return deleted;
  }
}

function urlOf(json: string): string | undefined {
  try {
    const v = JSON.parse(json) as { url?: unknown } | null;
    return typeof v?.url === 'string' ? v.url : undefined;
  } catch {
    return undefined;
  }
}
