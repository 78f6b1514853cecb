/**
 * Decoded MLS states of recently active conversations, keyed by group id. An entry is used only
 * when its version equals the stored row's version, so a write by another process (or a rollback)
 * can never be hidden behind a stale decoded copy.
 *
 * Bounded twice: by entries and by the encoded size of the states it holds (a 250-member group's
 * state is hundreds of times a 1:1 session's), least recently used first out. Sessions are never
 * loaded into it in bulk: an entry is made only by a conversation's own traffic.
 */
export const DEFAULT_STATE_CACHE_ENTRIES = 1000;
export const DEFAULT_STATE_CACHE_BYTES = 32 * 1024 * 1024;

export class VersionedLru<T> {
  private readonly entries = new Map<string, { version: number; value: T; bytes: number }>();
  private totalBytes = 0;

  constructor(
    private readonly capacity = DEFAULT_STATE_CACHE_ENTRIES,
    private readonly maxBytes = DEFAULT_STATE_CACHE_BYTES,
  ) {}

  get(key: string, version: number): T | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    this.entries.delete(key);
    if (hit.version !== version) {
      this.totalBytes -= hit.bytes;
      return undefined;
    }
    this.entries.set(key, hit);
    return hit.value;
  }

  /**
   * What is held for `key` at whatever version, without touching the recency order: never to be
   * used as the state of another version, only as a basis to decode that version's parts from.
   */
  peek(key: string): { version: number; value: T } | undefined {
    return this.entries.get(key);
  }

  /** `bytes`: the state's encoded size, what the byte bound counts. */
  set(key: string, version: number, value: T, bytes = 0): void {
    this.delete(key);
    if (bytes > this.maxBytes) return;
    this.entries.set(key, { version, value, bytes });
    this.totalBytes += bytes;
    while (this.entries.size > this.capacity || this.totalBytes > this.maxBytes) {
      this.delete(this.entries.keys().next().value as string);
    }
  }

  delete(key: string): void {
    const old = this.entries.get(key);
    if (!old) return;
    this.entries.delete(key);
    this.totalBytes -= old.bytes;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Encoded bytes of the states held. */
  get bytes(): number {
    return this.totalBytes;
  }
}
