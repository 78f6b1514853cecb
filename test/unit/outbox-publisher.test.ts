/**
 * The outbox publisher's two paths (issue 12): rows this process committed go out from memory,
 * the store is read back at start-up, on request and after a failed publish, and neither path
 * reorders, loses or repeats a row. The store is the real in-memory store; the publish function
 * stands in for the broker so each PUBACK can be held or failed at will.
 */
import { jest } from '@jest/globals';
import { pino } from 'pino';
import { asUnixSeconds } from '../../framework/relay/brand.js';
import { ManualClock } from '../../framework/relay/clock.js';
import { StorageError, TransportError } from '../../framework/relay/errors.js';
import { MemoryRelayStore } from '../../framework/relay/memory-store.js';
import { OutboxPublisher } from '../../framework/relay/outbox-publisher.js';
import type { InboundCommit, OutboxRecord, RelayStore } from '../../framework/relay/store.js';
import { PublishTooLargeError } from '../../framework/relay/transport-packet-size.js';

const AT = asUnixSeconds(1_800_000_000);

const row = (id: string, extra: Partial<OutboxRecord> = {}): OutboxRecord => ({
  id,
  topic: `t/${id}`,
  payload: new TextEncoder().encode(id),
  createdAt: AT,
  ...extra,
});

/** A MemoryRelayStore that counts listOutbox calls and can hold a commit after it was written. */
class CountingStore extends MemoryRelayStore {
  listCalls = 0;
  holdNextCommit: Promise<void> | undefined;
  failNextCommit = false;
  /** The next listing reads the rows, then waits for this before it returns them. */
  holdNextList: Promise<void> | undefined;
  override async listOutbox(limit?: number): Promise<OutboxRecord[]> {
    this.listCalls++;
    const rows = await super.listOutbox(limit);
    const hold = this.holdNextList;
    this.holdNextList = undefined;
    if (hold) await hold;
    return rows;
  }
  override async commit(c: InboundCommit): Promise<void> {
    if (this.failNextCommit) {
      this.failNextCommit = false;
      throw new StorageError('commit refused');
    }
    await super.commit(c);
    const hold = this.holdNextCommit;
    this.holdNextCommit = undefined;
    if (hold) await hold;
  }
}

/** Publishes in call order; each PUBACK resolves at once unless a failure or a hold was set up. */
class Broker {
  readonly topics: string[] = [];
  readonly failures = new Map<string, Error>();
  readonly holds = new Map<string, Promise<void>>();
  publish = async (topic: string): Promise<void> => {
    this.topics.push(topic);
    const hold = this.holds.get(topic);
    if (hold) await hold;
    const failure = this.failures.get(topic);
    if (failure) throw failure;
  };
  ids(): string[] {
    return this.topics.map((t) => t.slice(2));
  }
}

function setUp(): { store: CountingStore; broker: Broker; publisher: OutboxPublisher; writer: RelayStore } {
  const store = new CountingStore();
  const broker = new Broker();
  const publisher = new OutboxPublisher({
    store,
    publish: broker.publish,
    clock: new ManualClock(AT),
    log: pino({ level: 'silent' }),
    onQuarantine: () => undefined,
    retryAllowed: () => false,
  });
  return { store, broker, publisher, writer: publisher.handingRowsOver(store) };
}

const deferred = () => {
  let release!: () => void;
  const promise = new Promise<void>((r) => (release = r));
  return { promise, release };
};

test('start-up reads back what an earlier run left; rows committed afterwards go out without a read-back', async () => {
  const { store, broker, publisher, writer } = setUp();
  await store.commit({ outbox: [row('left1'), row('left2')] });
  await publisher.flush();
  expect(broker.ids()).toEqual(['left1', 'left2']);
  const listed = store.listCalls;
  for (let i = 0; i < 20; i++) {
    await writer.commit({ outbox: [row(`m${i}`)] });
    await publisher.flush();
  }
  expect(store.listCalls).toBe(listed);
  expect(broker.ids()).toEqual(['left1', 'left2', ...Array.from({ length: 20 }, (_, i) => `m${i}`)]);
  await publisher.deletePublished();
  expect(await store.listOutbox()).toEqual([]);
});

test('a failed publish falls back to a read-back: the failed row goes first, nothing twice', async () => {
  const { store, broker, publisher, writer } = setUp();
  await publisher.flush();
  broker.failures.set('t/b', new TransportError('transport ended'));
  await writer.commit({ outbox: [row('a'), row('b'), row('c')] });
  await expect(publisher.flush()).rejects.toThrow('transport ended');
  await writer.commit({ outbox: [row('d')] });
  broker.failures.clear();
  const listed = store.listCalls;
  await publisher.flush();
  expect(store.listCalls).toBeGreaterThan(listed);
  // a and c were acknowledged in the failed round (they went out in order with b); b and d follow.
  expect(broker.ids()).toEqual(['a', 'b', 'c', 'b', 'd']);
  const after = store.listCalls;
  await writer.commit({ outbox: [row('e')] });
  await publisher.flush();
  expect(store.listCalls).toBe(after);
  expect(broker.ids().slice(5)).toEqual(['e']);
});

test('a row a read-back published before its commit resolved is not published again from memory', async () => {
  const { store, broker, publisher, writer } = setUp();
  await publisher.flush();
  const hold = deferred();
  store.holdNextCommit = hold.promise;
  // Written to the store, but the commit has not resolved yet when the read-back lists it.
  const committing = writer.commit({ outbox: [row('x')] });
  await new Promise((r) => setImmediate(r));
  await publisher.readBack();
  expect(broker.ids()).toEqual(['x']);
  hold.release();
  await committing;
  await writer.commit({ outbox: [row('y')] });
  await publisher.flush();
  expect(broker.ids()).toEqual(['x', 'y']);
});

test('rows in hand wait behind a group commit row until the broker acknowledged it', async () => {
  const { broker, publisher, writer } = setUp();
  await publisher.flush();
  const ack = deferred();
  broker.holds.set('t/commit', ack.promise);
  await writer.commit({
    outbox: [row('commit', { awaitAck: true }), row('welcome', { dependsOn: 'commit' })],
  });
  const flushed = publisher.flush();
  await writer.commit({ outbox: [row('later')] });
  const again = publisher.flush();
  await new Promise((r) => setTimeout(r, 20));
  expect(broker.ids()).toEqual(['commit']);
  ack.release();
  await Promise.all([flushed, again]);
  expect(broker.ids()).toEqual(['commit', 'welcome', 'later']);
});

test('a row in hand that can never go out is quarantined with its dependents; later rows still go', async () => {
  const { store, broker, publisher, writer } = setUp();
  await publisher.flush();
  broker.failures.set('t/commit', new PublishTooLargeError('payload of 9 bytes exceeds maxPayloadBytes 8'));
  await writer.commit({
    outbox: [row('commit', { awaitAck: true }), row('welcome', { dependsOn: 'commit' }), row('other')],
  });
  await publisher.flush();
  expect(broker.ids()).toEqual(['commit', 'other']);
  await publisher.deletePublished();
  expect(await store.listOutbox()).toEqual([]);
});

test('a failed commit hands nothing over and makes the next round read the store back', async () => {
  const { store, broker, publisher, writer } = setUp();
  await publisher.flush();
  await writer.commit({ outbox: [row('ok')] });
  store.failNextCommit = true;
  await expect(writer.commit({ outbox: [row('lost')] })).rejects.toThrow('refused');
  const listed = store.listCalls;
  await publisher.flush();
  expect(store.listCalls).toBeGreaterThan(listed);
  expect(broker.ids()).toEqual(['ok']);
});

test('a read-back that listed a row before its delete landed does not publish it again', async () => {
  const { store, broker, publisher, writer } = setUp();
  await publisher.flush();
  await writer.commit({ outbox: [row('a')] });
  await publisher.flush();
  expect(broker.ids()).toEqual(['a']);
  // A reconnect's read-back lists 'a' (acknowledged, not yet deleted); the batched delete lands
  // before that listing returns.
  const hold = deferred();
  store.holdNextList = hold.promise;
  const reading = publisher.readBack();
  await new Promise((r) => setImmediate(r));
  await publisher.deletePublished();
  hold.release();
  await reading;
  expect(broker.ids()).toEqual(['a']);
});

test('acknowledged rows of one cleanup window are deleted together, not one DELETE per reply', async () => {
  jest.useFakeTimers();
  try {
    const { store, publisher, writer } = setUp();
    await publisher.flush();
    let deletes = 0;
    const deleteOutbox = store.deleteOutbox.bind(store);
    store.deleteOutbox = (ids) => {
      deletes++;
      return deleteOutbox(ids);
    };
    // Five replies 5 ms apart: all acknowledged within one cleanup window (50 ms).
    for (let i = 0; i < 5; i++) {
      await writer.commit({ outbox: [row(`q${i}`)] });
      await publisher.flush();
      await jest.advanceTimersByTimeAsync(5);
    }
    await jest.advanceTimersByTimeAsync(100);
    expect(deletes).toBe(1);
    expect(await store.listOutbox()).toEqual([]);
  } finally {
    jest.useRealTimers();
  }
});
