/**
 * A fixed replica slot taken as a process starts (framework/relay/slot-claim.ts), on the in-memory
 * lease store with its clock in the test's hands: a free slot is taken at once, a dead holder's
 * lease is waited out, and a holder that renews, or a new holder that takes the slot meanwhile,
 * is a live process: the start is refused with ReplicaSlotTaken, naming the fix.
 */
import { pino } from 'pino';
import {
  claimFixedSlot,
  LeaseKeeper,
  MemoryLeaseStore,
  ReplicaSlotTaken,
  replicaSlotLease,
} from '../../framework/relay/index.js';

const log = pino({ level: 'silent' });
const SLOT = replicaSlotLease(0);
const tick = () => new Promise((r) => setTimeout(r, 30));

let now = 1_000_000;
let store: MemoryLeaseStore;
let keeper: LeaseKeeper;

beforeEach(async () => {
  now = 1_000_000;
  store = new MemoryLeaseStore(() => now);
  keeper = new LeaseKeeper({ store, replica: { replicaId: 'g/0~aaaaaaaa' }, ttlMs: 3000 });
  await keeper.start();
});
afterEach(() => keeper.stop());

const claim = () => claimFixedSlot({ keeper, leases: store, slot: 0, log, pollMs: 5 });

test('a free slot is taken at once', async () => {
  await claim();
  expect(keeper.owns(SLOT)).toBe(true);
});

test("a dead holder's lease is waited out, then the slot is ours", async () => {
  await store.acquireLease(SLOT, 'g/0~dead0000', 3000);
  const claimed = claim();
  await tick();
  expect(keeper.owns(SLOT)).toBe(false);
  now += 3001;
  await claimed;
  expect(keeper.owns(SLOT)).toBe(true);
});

test('a holder that renews while we wait is a live process: refused, naming it and the fix', async () => {
  await store.acquireLease(SLOT, 'g/0~11111111', 3000);
  const claimed = claim().then(
    () => undefined,
    (e: unknown) => e,
  );
  await tick();
  now += 1000;
  await store.renewLease(SLOT, 'g/0~11111111', 3000);
  const e = await claimed;
  expect(e).toBeInstanceOf(ReplicaSlotTaken);
  expect(e).toMatchObject({ code: 'CONFIG', slot: 0, holder: 'g/0~11111111', since: 1_000_000 });
  expect((e as Error).message).toMatch(
    /^another process runs replica slot 0 \(holder g\/0~11111111, since 1970-01-01T00:16:40\.000Z\): give each replica its own broker\.replicaSlot, or use replicaSlot: auto$/,
  );
  expect(keeper.owns(SLOT)).toBe(false);
});

test('a slot another holder takes while we wait is a live process too', async () => {
  await store.acquireLease(SLOT, 'g/0~dead0000', 3000);
  const claimed = claim().then(
    () => undefined,
    (e: unknown) => e,
  );
  await tick();
  now += 3001;
  // An auto replica claims the slot the moment it lapsed, before our next look.
  await store.acquireLease(SLOT, 'g/host-12345678', 3000);
  expect(await claimed).toMatchObject({ holder: 'g/host-12345678' });
});
