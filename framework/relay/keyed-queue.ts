/**
 * Runs tasks one at a time per key and concurrently across keys, with bounds on both the number of
 * keys in flight and each key's backlog, so overload is refused instead of queued without limit.
 */
export class QueueFullError extends Error {
  constructor() {
    super('queue full');
  }
}

interface Lane {
  tail: Promise<void>;
  pending: number;
}

export class KeyedSerialQueue {
  private readonly lanes = new Map<string, Lane>();

  constructor(
    private readonly maxKeys = 10_000,
    private readonly maxPerKey = 1_000,
  ) {}

  get size(): number {
    return this.lanes.size;
  }

  /** Rejects with QueueFullError at once when the bounds are reached. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    let lane = this.lanes.get(key);
    if (!lane) {
      if (this.lanes.size >= this.maxKeys) return Promise.reject(new QueueFullError());
      lane = { tail: Promise.resolve(), pending: 0 };
      this.lanes.set(key, lane);
    }
    if (lane.pending >= this.maxPerKey) return Promise.reject(new QueueFullError());
    lane.pending++;
    const current = lane;
    const result = current.tail.then(task);
    current.tail = result.then(
      () => this.settle(key, current),
      () => this.settle(key, current),
    );
    return result;
  }

  /** Resolves when every task queued so far has settled. */
  async idle(): Promise<void> {
    while (this.lanes.size > 0) await Promise.all([...this.lanes.values()].map((l) => l.tail));
  }

  private settle(key: string, lane: Lane): void {
    lane.pending--;
    if (lane.pending === 0 && this.lanes.get(key) === lane) this.lanes.delete(key);
  }
}
