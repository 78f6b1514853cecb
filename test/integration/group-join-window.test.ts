/**
 * A joiner subscribes to the group topic before it stores the group (PROTOCOL.md §9 "Invitation"),
 * so a message can arrive while that store write is still running. It must wait for the write and
 * then be processed, not be dropped as `unknown_group`: a commit lost that way leaves the member an
 * epoch behind for good (every later message a `group_epoch_gap`), which is what the spread fan-out
 * bench (bench/group-fanout-spread.ts) ran into under load.
 */
import { MemoryRelayStore, type InboundCommit } from '../../framework/relay/index.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';
import { groupTexts, GroupWorld, until } from '../support/groups.js';

/** Holds the first commit that stores a group until released, and says when it got there. */
class GatedStore extends MemoryRelayStore {
  private armed = true;
  private enter!: () => void;
  readonly entered = new Promise<void>((resolve) => (this.enter = resolve));
  release!: () => void;
  private readonly released = new Promise<void>((resolve) => (this.release = resolve));

  override async commit(c: InboundCommit): Promise<void> {
    if (this.armed && c.conversations?.some((r) => r.kind === 'group')) {
      this.armed = false;
      this.enter();
      await this.released;
    }
    return super.commit(c);
  }
}

let broker: TestBroker;
let world: GroupWorld;

beforeAll(async () => {
  broker = await getTestBroker();
});
afterAll(async () => {
  await broker.close();
});
beforeEach(() => {
  world = new GroupWorld(broker.url);
});
afterEach(async () => {
  await world.close();
});

test('a message that arrives while the joiner still stores the Welcome is processed after it, not dropped', async () => {
  const creator = await world.start();
  const store = new GatedStore();
  const joiner = await world.start(store);
  const info = await creator.client.createGroup([joiner.client.userId]);
  // The joiner has its subscription and is storing the group: the creator's next message comes now.
  await store.entered;
  await creator.client.sendToGroup(info.groupId, { content: 'while you were joining' });
  // Long enough for the broker to deliver it into the window; the old code drops it there.
  await until(() => (joiner.client.drops.snapshot().unknown_group ?? 0) > 0, 1500).catch(() => undefined);
  store.release();
  await until(
    () => groupTexts(joiner, info.groupId).includes('while you were joining'),
    20_000,
    'the message',
  );
  expect(joiner.client.drops.snapshot().unknown_group ?? 0).toBe(0);
});
