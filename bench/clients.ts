/**
 * The RelayClients of the benches: peers and members, and the bots in the child processes. Unless
 * given a store, each gets its own MemoryRelayStore, so the peers' storage never shows in a figure.
 * All mine PoW on the event loop: the default, a pool of worker threads per client, would start
 * hundreds of threads for a hundred clients on a 2-core machine.
 */
import { MemoryRelayStore, RelayClient, type RelayClientOptions } from '../framework/relay/index.js';

/** Not started yet, so listeners can be attached before anything arrives. */
export function benchClient(
  url: string,
  prefix: string,
  options: Partial<RelayClientOptions> = {},
): Promise<RelayClient> {
  return RelayClient.create({
    store: new MemoryRelayStore(),
    broker: { url },
    topicPrefix: prefix,
    powWorkers: 0,
    ...options,
  });
}

/**
 * `make(0)` … `make(count - 1)`, `size` at a time rather than all together on the one event loop.
 * Stops early, with what it has, once `more()` says no.
 */
export async function inBatches<T>(
  count: number,
  size: number,
  make: (i: number) => Promise<T>,
  more: () => boolean = () => true,
): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < count; i += size) {
    if (!more()) break;
    out.push(
      ...(await Promise.all(Array.from({ length: Math.min(size, count - i) }, (_, j) => make(i + j)))),
    );
  }
  return out;
}
