/**
 * Decoded MLS states of recently active conversations, keyed by group id. An entry is used only
 * when its version equals the stored row's version, so a write by another process (or a rollback)
 * can never be hidden behind a stale decoded copy.
 */
export class VersionedLru<T> {
  private readonly entries = new Map<string, { version: number; value: T }>();

  constructor(private readonly capacity = 1000) {}

  get(key: string, version: number): T | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    this.entries.delete(key);
    if (hit.version !== version) return undefined;
    this.entries.set(key, hit);
    return hit.value;
  }

  set(key: string, version: number, value: T): void {
    this.entries.delete(key);
    this.entries.set(key, { version, value });
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
