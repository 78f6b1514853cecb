/**
 * Our own KeyBundle's lifecycle (PROTOCOL.md §4), with time moved by hand.
 */
import {
  asPowBits,
  decodeKeyBundle,
  generateIdentity,
  MemoryRelayStore,
  mls,
  verifyKeyBundle,
  type UnixSeconds,
} from '../../framework/relay/index.js';
import {
  CONSUMED_GRACE_SECONDS,
  ensureOwnBundle,
  SUPERSEDED_RETENTION_SECONDS,
} from '../../framework/relay/own-bundle.js';

const DAY = 86_400;
const T0 = Math.floor(Date.now() / 1000);
const at = (offset: number) => (T0 + offset) as UnixSeconds;

async function setup() {
  const identity = generateIdentity();
  const store = new MemoryRelayStore();
  const ctx = await mls.createMlsContext();
  const deps = { identity, store, mls: ctx, powBits: asPowBits(18), displayName: 'lifecycle' };
  return { identity, store, ctx, deps };
}

test('a first bundle is minted, signed and verifiable; asking again returns the same one', async () => {
  const { identity, store, ctx, deps } = await setup();
  const first = await ensureOwnBundle(deps, at(0));
  const verified = await verifyKeyBundle(first.bytes, identity.userId, {
    now: at(0),
    verifier: mls.keyPackageVerifier(ctx),
  });
  expect(verified.bundle.displayName).toBe('lifecycle');
  expect(verified.bundle.powBits).toBe(18);
  const again = await ensureOwnBundle(deps, at(60));
  expect(again).toEqual(first);
  expect(await store.listKeyPackages()).toHaveLength(1);
});

test('a consumed KeyPackage is replaced at once and its keys deleted after the grace period', async () => {
  const { store, deps } = await setup();
  const first = await ensureOwnBundle(deps, at(0));
  await store.commit({ consumedKeyPackage: { ref: first.keyPackageRef, at: at(10) } });
  const second = await ensureOwnBundle(deps, at(10));
  expect(second.keyPackageRef).not.toBe(first.keyPackageRef);
  expect(second.issuedAt).toBeGreaterThan(first.issuedAt);
  // Within the grace period an initiator that fetched the old bundle can still be welcomed.
  expect((await store.listKeyPackages()).map((k) => k.ref)).toContain(first.keyPackageRef);
  await ensureOwnBundle(deps, at(10 + CONSUMED_GRACE_SECONDS + 1));
  expect((await store.listKeyPackages()).map((k) => k.ref)).not.toContain(first.keyPackageRef);
});

test('issued_at strictly increases even when the clock does not', async () => {
  const { store, deps } = await setup();
  const first = await ensureOwnBundle(deps, at(0));
  await store.commit({ consumedKeyPackage: { ref: first.keyPackageRef, at: at(0) } });
  const second = await ensureOwnBundle(deps, at(0));
  expect(second.issuedAt).toBe(first.issuedAt + 1);
});

test('a bundle is refreshed daily; superseded unused keys are kept 7 days, then deleted', async () => {
  const { store, deps } = await setup();
  const first = await ensureOwnBundle(deps, at(0));
  const daily = await ensureOwnBundle(deps, at(DAY));
  expect(daily.keyPackageRef).not.toBe(first.keyPackageRef);
  const old = (await store.listKeyPackages()).find((k) => k.ref === first.keyPackageRef);
  expect(old?.supersededAt).toBe(at(DAY));
  await ensureOwnBundle(deps, at(DAY + SUPERSEDED_RETENTION_SECONDS - 60));
  expect((await store.listKeyPackages()).map((k) => k.ref)).toContain(first.keyPackageRef);
  await ensureOwnBundle(deps, at(DAY + SUPERSEDED_RETENTION_SECONDS + 1));
  expect((await store.listKeyPackages()).map((k) => k.ref)).not.toContain(first.keyPackageRef);
});

test('a changed profile or display name is published at once with a fresh bundle; an unchanged one is not', async () => {
  const { identity, store, ctx, deps } = await setup();
  const profile = { bot: true, description: 'v1', commands: [{ name: 'ping' }] };
  const first = await ensureOwnBundle({ ...deps, profile }, at(0));
  expect(await ensureOwnBundle({ ...deps, profile: { ...profile } }, at(60))).toEqual(first);
  const upgraded = { ...profile, commands: [{ name: 'ping' }, { name: 'remind', args: '<minutes:int>' }] };
  const second = await ensureOwnBundle({ ...deps, profile: upgraded }, at(120));
  expect(second.issuedAt).toBeGreaterThan(first.issuedAt);
  const verified = await verifyKeyBundle(second.bytes, identity.userId, {
    now: at(120),
    verifier: mls.keyPackageVerifier(ctx),
  });
  expect(verified.bundle.profile).toEqual(upgraded);
  const renamed = await ensureOwnBundle({ ...deps, displayName: 'renamed', profile: upgraded }, at(180));
  expect(renamed.issuedAt).toBeGreaterThan(second.issuedAt);
  // Dropping the profile is a change too.
  const bare = await ensureOwnBundle({ ...deps, displayName: 'renamed' }, at(240));
  expect(bare.issuedAt).toBeGreaterThan(renamed.issuedAt);
  expect(decodeKeyBundle(bare.bytes).profile).toBeUndefined();
  expect((await store.listKeyPackages()).length).toBe(4);
});
