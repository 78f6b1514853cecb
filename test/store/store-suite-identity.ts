/**
 * Store suite, part of describeRelayStore (store-suite.ts). Identity, key packages and peers: what the
 * bot knows of itself and of others.
 */
import type { RelayStore } from '../../framework/relay/store.js';
import {
  at,
  bytes,
  allByteValues,
  peer,
  keyPackage,
  isPlainBytes,
  type StoreSuiteContext,
} from './store-fixtures.js';

export function describeIdentity(ctx: StoreSuiteContext): void {
  describe('identity and own bundle', () => {
    let store: RelayStore;
    beforeEach(() => {
      store = ctx.store;
    });

    it('starts empty, saves, and replaces', async () => {
      expect(await store.loadIdentity()).toBeUndefined();
      const identity = { signingSeed: allByteValues(), sealSecret: bytes(32, 9), createdAt: at() };
      await store.saveIdentity(identity);
      const loaded = await store.loadIdentity();
      expect(loaded).toEqual(identity);
      expect(isPlainBytes(loaded!.signingSeed)).toBe(true);
      const next = { signingSeed: bytes(32, 1), sealSecret: bytes(32, 2), createdAt: at(5) };
      await store.saveIdentity(next);
      expect(await store.loadIdentity()).toEqual(next);
    });

    it('keeps one own bundle', async () => {
      expect(await store.loadOwnBundle()).toBeUndefined();
      await store.saveOwnBundle({ bytes: bytes(500), issuedAt: at(), keyPackageRef: 'aa' });
      await store.saveOwnBundle({ bytes: bytes(400, 2), issuedAt: at(10), keyPackageRef: 'bb' });
      expect(await store.loadOwnBundle()).toEqual({
        bytes: bytes(400, 2),
        issuedAt: at(10),
        keyPackageRef: 'bb',
      });
    });
  });
}

export function describeKeyPackages(ctx: StoreSuiteContext): void {
  describe('key packages', () => {
    let store: RelayStore;
    beforeEach(() => {
      store = ctx.store;
    });

    const sorted = async () => (await store.listKeyPackages()).sort((a, b) => a.ref.localeCompare(b.ref));

    it('puts, replaces and lists', async () => {
      expect(await store.listKeyPackages()).toEqual([]);
      await store.putKeyPackage(keyPackage('01'));
      await store.putKeyPackage(keyPackage('02', { consumedAt: at(1), supersededAt: at(2) }));
      await store.putKeyPackage(keyPackage('01', { privateKeyPackage: bytes(10, 8) }));
      const list = await sorted();
      expect(list).toEqual([
        keyPackage('01', { privateKeyPackage: bytes(10, 8) }),
        keyPackage('02', { consumedAt: at(1), supersededAt: at(2) }),
      ]);
      expect(list[0]).not.toHaveProperty('consumedAt');
    });

    it('supersedes all but one, keeping earlier supersede times', async () => {
      await store.putKeyPackage(keyPackage('01'));
      await store.putKeyPackage(keyPackage('02', { supersededAt: at(1) }));
      await store.putKeyPackage(keyPackage('03'));
      await store.markKeyPackagesSuperseded('03', at(50));
      expect((await sorted()).map((k) => k.supersededAt)).toEqual([at(50), at(1), undefined]);
    });

    it('deletes by ref', async () => {
      for (const r of ['01', '02', '03']) await store.putKeyPackage(keyPackage(r));
      await store.deleteKeyPackages([]);
      await store.deleteKeyPackages(['01', '03', 'missing']);
      expect((await sorted()).map((k) => k.ref)).toEqual(['02']);
    });

    it('marks a consumed key package once, through commit', async () => {
      await store.putKeyPackage(keyPackage('01'));
      await store.commit({ consumedKeyPackage: { ref: '01', at: at(7) } });
      await store.commit({ consumedKeyPackage: { ref: '01', at: at(9) } });
      await store.commit({ consumedKeyPackage: { ref: 'missing', at: at(9) } });
      expect(await store.listKeyPackages()).toEqual([keyPackage('01', { consumedAt: at(7) })]);
    });
  });
}

export function describePeers(ctx: StoreSuiteContext): void {
  describe('peers', () => {
    let store: RelayStore;
    beforeEach(() => {
      store = ctx.store;
    });

    it('round-trips with and without optional fields', async () => {
      expect(await store.getPeer('p1')).toBeUndefined();
      const full = peer('p1', { bundleIssuedAt: at(3), displayName: 'Ada ✓' });
      await store.putPeer(full);
      expect(await store.getPeer('p1')).toEqual(full);
      await store.putPeer(peer('p1'));
      const bare = await store.getPeer('p1');
      expect(bare).toEqual(peer('p1'));
      expect(bare).not.toHaveProperty('displayName');
    });

    it('upserts peers in a commit', async () => {
      await store.putPeer(peer('p1'));
      await store.commit({ peers: [peer('p1', { powBits: 20 }), peer('p2')] });
      expect((await store.getPeer('p1'))?.powBits).toBe(20);
      expect(await store.getPeer('p2')).toEqual(peer('p2'));
    });
  });
}
