/**
 * X25519 keys without JWK (x25519-node.ts) and the MLS HPKE built on them (mls/hpke-node.ts).
 *
 * The first block is the regression guard for the Node 20 deadlock (test/fuzz/README.md): neither
 * sealed sender nor MLS may export a KeyObject as JWK, nor generate keys through WebCrypto's async
 * jobs, whatever it does. The spies sit on the KeyObject prototypes and on `crypto.subtle`, so they
 * see calls from ts-mls and the `hpke` package as well as ours.
 */
import { generateKeyPairSync, KeyObject, randomBytes } from 'node:crypto';
import { x25519 } from '@noble/curves/ed25519.js';
import { jest } from '@jest/globals';
import { defaultCryptoProvider, getCiphersuiteFromName } from 'ts-mls';
import type { CiphersuiteImpl, Hpke } from 'ts-mls';
import { CryptoError } from 'ts-mls/mlsError.js';
import { asUnixSeconds, asUserId } from '../../framework/relay/brand.js';
import { ArgumentError } from '../../framework/relay/errors.js';
import {
  createMlsContext,
  createOneToOne,
  encryptApplication,
  generateKeyPackage,
  joinFromWelcome,
  processMessage,
  proposeUpdate,
} from '../../framework/relay/mls/index.js';
import { RELAY_CIPHERSUITE } from '../../framework/relay/mls/context.js';
import { createNodeCryptoProvider } from '../../framework/relay/mls/provider-node.js';
import { createOpener, seal } from '../../framework/relay/seal.js';
import { DHKEM_X25519_HKDF_SHA256 } from '../../framework/relay/seal-node-primitives.js';
import { X25519Key } from '../../framework/relay/x25519-node.js';
import { makeIdentity } from './mls-helpers.js';

const bytes = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

describe('no JWK export and no async key generation anywhere in the crypto path', () => {
  const sample = generateKeyPairSync('x25519');
  // PublicKeyObject and PrivateKeyObject each define their own export(); KeyObject has none.
  const prototypes = [
    KeyObject.prototype,
    Object.getPrototypeOf(sample.publicKey) as KeyObject,
    Object.getPrototypeOf(sample.privateKey) as KeyObject,
  ].filter((p) => Object.hasOwn(p, 'export'));
  const jwkExports = (spies: Array<jest.Spied<KeyObject['export']>>): number =>
    spies
      .flatMap((s) => s.mock.calls)
      .filter(([options]) => (options as { format?: string })?.format === 'jwk').length;

  let exportSpies: Array<jest.Spied<KeyObject['export']>>;
  let subtleSpies: Array<jest.Spied<(...args: never[]) => unknown>>;
  beforeEach(() => {
    exportSpies = prototypes.map((p) => jest.spyOn(p, 'export'));
    const subtle = globalThis.crypto.subtle;
    subtleSpies = [
      jest.spyOn(subtle, 'generateKey') as never,
      jest.spyOn(subtle, 'exportKey') as never,
      jest.spyOn(subtle, 'deriveBits') as never,
    ];
  });
  afterEach(() => jest.restoreAllMocks());

  test('the spies see a JWK export when one happens (control)', () => {
    expect(prototypes).toHaveLength(2);
    // Imported, not generated, keys: no KeyGenJob made them, so these exports cannot hang.
    const imported = X25519Key.fromPrivateBytes(bytes(32), false);
    imported.keyObject.export({ format: 'jwk' });
    imported.publicKey().keyObject.export({ format: 'jwk' });
    expect(jwkExports(exportSpies)).toBe(2);
  });

  test('sealed sender: key generation, serialization, seal, open', async () => {
    const kem = DHKEM_X25519_HKDF_SHA256();
    const pair = await kem.GenerateKeyPair(true);
    const secret = await kem.SerializePrivateKey(pair.privateKey);
    const recipientSealKey = await kem.SerializePublicKey(pair.publicKey);
    const recipientId = asUserId(bytes(16));
    const sentAt = asUnixSeconds(1_700_000_000);
    const plaintext = bytes(100);
    const opener = await createOpener(secret);
    for (const unsafeIkmE of [undefined, bytes(32)]) {
      const sealed = await seal({ recipientId, recipientSealKey, plaintext, sentAt, unsafeIkmE });
      expect(await opener.open({ recipientId, sentAt, ...sealed })).toEqual(plaintext);
    }
    expect(jwkExports(exportSpies)).toBe(0);
    for (const spy of subtleSpies) expect(spy).not.toHaveBeenCalled();
  });

  test('MLS: key packages, 1:1 creation, Welcome, application messages, an Update proposal', async () => {
    const ctx = await createMlsContext();
    const now = Math.floor(Date.now() / 1000);
    const bobKp = await generateKeyPackage(ctx, makeIdentity(), now);
    const created = await createOneToOne(ctx, makeIdentity(), bobKp.keyPackage, { now });
    const joined = await joinFromWelcome(ctx, created.welcome, created.ratchetTree, [bobKp]);
    const out = await encryptApplication(ctx, created.state, bytes(20));
    await processMessage(ctx, joined.state, out.message);
    // Generate-then-export, the exact shape of the observed deadlock under the default provider.
    await proposeUpdate(ctx, joined.state);
    expect(jwkExports(exportSpies)).toBe(0);
    for (const spy of subtleSpies) expect(spy).not.toHaveBeenCalled();
  });
});

describe('X25519Key', () => {
  test('the public key of an imported private key is the RFC 7748 one (noble)', async () => {
    for (let i = 0; i < 20; i++) {
      const sk = bytes(32);
      const key = X25519Key.fromPrivateBytes(sk, true);
      expect(key.publicKey().publicBytes).toEqual(x25519.getPublicKey(sk));
      expect(key.secretBytes()).toEqual(sk);
    }
  });

  test('generated pairs: extractable ones give back a scalar that matches their public key', () => {
    const extractable = X25519Key.generate(true);
    expect(extractable.publicKey.publicBytes).toEqual(
      x25519.getPublicKey(extractable.privateKey.secretBytes()),
    );
    const sealed = X25519Key.generate(false);
    expect(sealed.publicKey.publicBytes).toHaveLength(32);
    expect(() => sealed.privateKey.secretBytes()).toThrow(ArgumentError);
    expect(() => X25519Key.fromPrivateBytes(bytes(32), false).secretBytes()).toThrow(ArgumentError);
  });

  test('raw public import keeps the bytes; wrong lengths are ArgumentError', () => {
    const pk = x25519.getPublicKey(bytes(32));
    expect(X25519Key.fromPublicBytes(pk).publicBytes).toEqual(pk);
    expect(() => X25519Key.fromPublicBytes(bytes(31))).toThrow(ArgumentError);
    expect(() => X25519Key.fromPrivateBytes(bytes(33), true)).toThrow(ArgumentError);
  });
});

describe('MLS HPKE on node:crypto agrees with ts-mls default (@hpke/core)', () => {
  const suite = getCiphersuiteFromName(RELAY_CIPHERSUITE);
  let node: Hpke;
  let base: Hpke;
  beforeAll(async () => {
    node = (await createNodeCryptoProvider().getCiphersuiteImpl(suite)).hpke;
    base = ((await defaultCryptoProvider.getCiphersuiteImpl(suite)) as CiphersuiteImpl).hpke;
  });

  test('deriveKeyPair gives the same key pair bytes', async () => {
    const ikm = bytes(32);
    const a = await node.deriveKeyPair(ikm);
    const b = await base.deriveKeyPair(ikm);
    expect(await node.exportPublicKey(a.publicKey)).toEqual(await base.exportPublicKey(b.publicKey));
    expect(await node.exportPrivateKey(a.privateKey)).toEqual(await base.exportPrivateKey(b.privateKey));
  });

  test('seal/open and exportSecret/importSecret cross in both directions', async () => {
    for (const [from, to] of [
      [node, base],
      [base, node],
    ] as const) {
      const recipient = await to.generateKeyPair();
      const pk = await from.importPublicKey(await to.exportPublicKey(recipient.publicKey));
      const info = bytes(12);
      const aad = bytes(7);
      const plaintext = bytes(50);
      const sealed = await from.seal(pk, plaintext, info, aad);
      expect(await to.open(recipient.privateKey, sealed.enc, sealed.ct, info, aad)).toEqual(plaintext);
      const exported = await from.exportSecret(pk, bytes(0), 32, info);
      expect(await to.importSecret(recipient.privateKey, bytes(0), exported.enc, 32, info)).toEqual(
        exported.secret,
      );
      // A key pair serialized by one side works on the other.
      const moved = await from.importPrivateKey(await to.exportPrivateKey(recipient.privateKey));
      expect(await from.open(moved, sealed.enc, sealed.ct, info, aad)).toEqual(plaintext);
    }
  });

  test('received garbage is a CryptoError, as under the default provider', async () => {
    const recipient = await node.generateKeyPair();
    const info = bytes(4);
    const sealed = await node.seal(recipient.publicKey, bytes(10), info);
    const flipped = sealed.ct.slice();
    flipped[0]! ^= 1;
    await expect(node.open(recipient.privateKey, sealed.enc, flipped, info)).rejects.toThrow(CryptoError);
    await expect(node.importPublicKey(bytes(31))).rejects.toThrow(CryptoError);
    await expect(node.importPrivateKey(bytes(33))).rejects.toThrow(CryptoError);
    await expect(
      node.importSecret(recipient.privateKey, bytes(0), new Uint8Array(32), 32, bytes(4)),
    ).rejects.toThrow(CryptoError);
  });
});
