/**
 * What durable storage costs per message. Part 1: the raw cost of one `commit()` shaped like an
 * inbound message (session row with ~3 KB state, processed digest, envelope digest, one outbox row)
 * on Memory, SQLite (WAL, synchronous=FULL, temp file) and Postgres (fresh schema, default
 * synchronous_commit), sequential and with 10 concurrent committers, against the durability floor
 * of each (one fdatasync; one autocommitted single-row INSERT). Part 2: sustained echo round trips
 * through a real broker for 1, 10 and 100 concurrent sessions with the bot on each store, against
 * the same request/reply pattern on the raw MQTT transport measured in the same run.
 *
 * Bot and peers share this process (and its event loop), so end-to-end figures include the peers'
 * own MLS and sealing work; the per-round-trip CPU printed with each configuration shows how close
 * the process is to one saturated core.
 *
 * Part 1 lives in store-commit.ts, part 2 in store-e2e.ts, the stores both open in store-open.ts.
 */
import { commitCosts } from './store-commit.js';
import { endToEnd } from './store-e2e.js';
import { availableKinds } from './store-open.js';

export { commitCosts } from './store-commit.js';
export { endToEnd, type EndToEndOptions } from './store-e2e.js';
export type { StoreKind } from './store-open.js';

export async function run(): Promise<void> {
  const kinds = await availableKinds();
  await commitCosts(kinds);
  await endToEnd({ kinds });
}
