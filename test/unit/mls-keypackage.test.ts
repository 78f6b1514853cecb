import { readFileSync } from 'node:fs';
import {
  createCommit,
  createGroup,
  defaultCapabilities,
  encodeMlsMessage,
  generateKeyPackageWithKey,
} from 'ts-mls';
import { encodeRatchetTree } from 'ts-mls/ratchetTree.js';
import { fromHex, toHex } from '../../framework/relay/bytes.js';
import { ArgumentError, CodecError, VerificationError } from '../../framework/relay/errors.js';
import {
  CLOCK_SKEW,
  KEY_PACKAGE_LIFETIME,
  KEY_PACKAGE_NOT_BEFORE_BACKDATE,
  createMlsContext,
  credentialIdentityOf,
  generateKeyPackage,
  identityMatchesKey,
  joinFromWelcome,
  keyPackageVerifier,
  userIdFromKey,
  verifyKeyPackage,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import { relayAuthenticationService } from '../../framework/relay/mls/auth.js';
import {
  decodeKeyPackageMessage,
  decodePrivateKeyPackage,
  encodeKeyPackageMessage,
  encodePrivateKeyPackage,
  relayCapabilities,
} from '../../framework/relay/mls/keypackage.js';
import { ed25519PublicFromSeed, makeIdentity, nowSeconds } from './mls-helpers.js';

const protocolVectors = JSON.parse(
  readFileSync(new URL('../vectors/protocol.json', import.meta.url), 'utf8'),
) as { identity: { ed25519_seed: string; ed25519_public: string; user_id: string } };

let ctx: MlsContext;
beforeAll(async () => {
  ctx = await createMlsContext();
});

describe('credential identity (PROTOCOL.md §2)', () => {
  test('user id derivation matches the shared vector', () => {
    const pk = fromHex(protocolVectors.identity.ed25519_public);
    expect(ed25519PublicFromSeed(fromHex(protocolVectors.identity.ed25519_seed))).toEqual(pk);
    expect(toHex(userIdFromKey(pk))).toBe(protocolVectors.identity.user_id);
    const identity = credentialIdentityOf(userIdFromKey(pk));
    expect(new TextDecoder().decode(identity)).toBe(protocolVectors.identity.user_id);
    expect(identityMatchesKey(identity, pk)).toBe(true);
  });

  test('the authentication service refuses foreign, uppercase and non-Basic credentials', async () => {
    const a = makeIdentity();
    const b = makeIdentity();
    const ok = { credentialType: 'basic' as const, identity: credentialIdentityOf(a.userId) };
    expect(await relayAuthenticationService.validateCredential(ok, a.signingPublic)).toBe(true);
    expect(await relayAuthenticationService.validateCredential(ok, b.signingPublic)).toBe(false);
    const upper = new TextEncoder().encode(toHex(a.userId).toUpperCase());
    expect(
      await relayAuthenticationService.validateCredential(
        { credentialType: 'basic', identity: upper },
        a.signingPublic,
      ),
    ).toBe(false);
    expect(
      await relayAuthenticationService.validateCredential(
        { credentialType: 'basic', identity: a.userId },
        a.signingPublic,
      ),
    ).toBe(false);
    expect(
      await relayAuthenticationService.validateCredential(
        { credentialType: 'x509', certificates: [] },
        a.signingPublic,
      ),
    ).toBe(false);
  });
});

describe('KeyPackages', () => {
  test('generate and verify: identity, lifetime, ref', async () => {
    const id = makeIdentity();
    const now = nowSeconds();
    const kp = await generateKeyPackage(ctx, id, now);
    expect(kp.notAfter).toBe(now + KEY_PACKAGE_LIFETIME);
    const v = await verifyKeyPackage(ctx, kp.keyPackage, now);
    expect(v.identityKey).toEqual(id.signingPublic);
    expect(v.userId).toEqual(id.userId);
    expect(new TextDecoder().decode(v.credentialIdentity)).toBe(toHex(id.userId));
    expect(v.ref).toEqual(kp.ref);
    expect(v.notBefore).toBe(now - 3600);
    const viaInterface = await keyPackageVerifier(ctx).verifyKeyPackage(kp.keyPackage, now);
    expect(viaInterface.identityKey).toEqual(id.signingPublic);
  });

  test('lifetime: accepted within ±10 min skew, rejected outside', async () => {
    const now = nowSeconds();
    const kp = await generateKeyPackage(ctx, makeIdentity(), now);
    const notAfter = now + KEY_PACKAGE_LIFETIME;
    const notBefore = now - 3600;
    await expect(verifyKeyPackage(ctx, kp.keyPackage, notAfter + CLOCK_SKEW)).resolves.toBeDefined();
    await expect(verifyKeyPackage(ctx, kp.keyPackage, notAfter + CLOCK_SKEW + 1)).rejects.toBeInstanceOf(
      VerificationError,
    );
    await expect(verifyKeyPackage(ctx, kp.keyPackage, notBefore - CLOCK_SKEW)).resolves.toBeDefined();
    await expect(verifyKeyPackage(ctx, kp.keyPackage, notBefore - CLOCK_SKEW - 1)).rejects.toBeInstanceOf(
      VerificationError,
    );
  });

  test('an expired KeyPackage is rejected', async () => {
    const issued = nowSeconds() - KEY_PACKAGE_LIFETIME - 2 * CLOCK_SKEW;
    const kp = await generateKeyPackage(ctx, makeIdentity(), issued);
    await expect(verifyKeyPackage(ctx, kp.keyPackage, nowSeconds())).rejects.toThrow(/lifetime/);
  });

  test('a KeyPackage whose credential names another user is rejected', async () => {
    const me = makeIdentity();
    const victim = makeIdentity();
    const now = nowSeconds();
    // Properly signed by `me`, but claiming the victim's user id.
    const { publicPackage } = await generateKeyPackageWithKey(
      { credentialType: 'basic', identity: credentialIdentityOf(victim.userId) },
      relayCapabilities(),
      { notBefore: BigInt(now - 60), notAfter: BigInt(now + 3600) },
      [],
      { signKey: me.signingSeed, publicKey: me.signingPublic },
      ctx.cipherSuite,
    );
    await expect(verifyKeyPackage(ctx, encodeKeyPackageMessage(publicPackage), now)).rejects.toThrow(
      /credential/,
    );
  });

  const packageWithLifetime = async (
    notBefore: bigint,
    notAfter: bigint,
    capabilities = relayCapabilities(),
  ): Promise<Uint8Array> => {
    const me = makeIdentity();
    const { publicPackage } = await generateKeyPackageWithKey(
      { credentialType: 'basic', identity: credentialIdentityOf(me.userId) },
      capabilities,
      { notBefore, notAfter },
      [],
      { signKey: me.signingSeed, publicKey: me.signingPublic },
      ctx.cipherSuite,
    );
    return encodeKeyPackageMessage(publicPackage);
  };

  // Turned around by issue 10: ts-mls's default "forever" lifetime used to count as current.
  test('a KeyPackage with ts-mls default lifetime (forever) is refused; GREASE capabilities are tolerated', async () => {
    const forever = await packageWithLifetime(0n, 9223372036854775807n, defaultCapabilities());
    await expect(verifyKeyPackage(ctx, forever, nowSeconds())).rejects.toThrow(/total lifetime/);
    const now = BigInt(nowSeconds());
    const grease = await packageWithLifetime(now - 3600n, now + 3600n, defaultCapabilities());
    await expect(verifyKeyPackage(ctx, grease, nowSeconds())).resolves.toBeDefined();
  });

  test('total lifetime: at most 28 days + 1 h + the clock skew (PROTOCOL.md §4)', async () => {
    const now = nowSeconds();
    const longest = BigInt(KEY_PACKAGE_NOT_BEFORE_BACKDATE + KEY_PACKAGE_LIFETIME + CLOCK_SKEW);
    const notBefore = BigInt(now - 7200);
    const atLimit = await packageWithLifetime(notBefore, notBefore + longest);
    await expect(verifyKeyPackage(ctx, atLimit, now)).resolves.toBeDefined();
    const tooLong = await packageWithLifetime(notBefore, notBefore + longest + 1n);
    await expect(verifyKeyPackage(ctx, tooLong, now)).rejects.toBeInstanceOf(VerificationError);
    await expect(verifyKeyPackage(ctx, tooLong, now)).rejects.toThrow(/total lifetime/);
    const inverted = await packageWithLifetime(BigInt(now + 60), BigInt(now - 60));
    await expect(verifyKeyPackage(ctx, inverted, now)).rejects.toBeInstanceOf(VerificationError);
  });

  test('tampered KeyPackages are rejected', async () => {
    const now = nowSeconds();
    const kp = await generateKeyPackage(ctx, makeIdentity(), now);
    const decoded = decodeKeyPackageMessage(kp.keyPackage);
    const badSig = decoded.signature.slice();
    badSig[0]! ^= 1;
    await expect(
      verifyKeyPackage(ctx, encodeKeyPackageMessage({ ...decoded, signature: badSig }), now),
    ).rejects.toThrow(/KeyPackage signature/);
    const badInit = decoded.initKey.slice();
    badInit[0]! ^= 1;
    await expect(
      verifyKeyPackage(ctx, encodeKeyPackageMessage({ ...decoded, initKey: badInit }), now),
    ).rejects.toBeInstanceOf(VerificationError);
    const sameKeys = { ...decoded, initKey: decoded.leafNode.hpkePublicKey };
    await expect(verifyKeyPackage(ctx, encodeKeyPackageMessage(sameKeys), now)).rejects.toThrow(/init key/);
    const otherSuite = { ...decoded, cipherSuite: 'MLS_128_DHKEMP256_AES128GCM_SHA256_P256' as const };
    await expect(verifyKeyPackage(ctx, encodeKeyPackageMessage(otherSuite), now)).rejects.toThrow(/suite/);
    await expect(verifyKeyPackage(ctx, kp.keyPackage.subarray(0, 40), now)).rejects.toBeInstanceOf(
      CodecError,
    );
    const trailing = new Uint8Array(kp.keyPackage.length + 1);
    trailing.set(kp.keyPackage);
    await expect(verifyKeyPackage(ctx, trailing, now)).rejects.toBeInstanceOf(CodecError);
  });

  test('generateKeyPackage refuses an identity whose user id does not derive from its key', async () => {
    const a = makeIdentity();
    const b = makeIdentity();
    await expect(generateKeyPackage(ctx, { ...a, userId: b.userId }, nowSeconds())).rejects.toBeInstanceOf(
      ArgumentError,
    );
  });

  test('private KeyPackage encoding round-trips and rejects malformed input', async () => {
    const kp = await generateKeyPackage(ctx, makeIdentity(), nowSeconds());
    const decoded = decodePrivateKeyPackage(kp.privateKeyPackage);
    expect(encodePrivateKeyPackage(decoded)).toEqual(kp.privateKeyPackage);
    expect(() => decodePrivateKeyPackage(kp.privateKeyPackage.subarray(0, 10))).toThrow(CodecError);
    const extra = new Uint8Array(kp.privateKeyPackage.length + 1);
    extra.set(kp.privateKeyPackage);
    expect(() => decodePrivateKeyPackage(extra)).toThrow(CodecError);
  });
});

describe('Welcome checks', () => {
  test('a Welcome from a creator whose leaf identity does not derive from its key is refused', async () => {
    // A hostile client with a permissive authentication service forges its own leaf.
    const forger = makeIdentity();
    const victim = makeIdentity();
    const bob = makeIdentity();
    const now = nowSeconds();
    const bobKp = await generateKeyPackage(ctx, bob, now);
    const forged = await generateKeyPackageWithKey(
      { credentialType: 'basic', identity: credentialIdentityOf(victim.userId) },
      relayCapabilities(),
      { notBefore: BigInt(now - 60), notAfter: BigInt(now + 3600) },
      [],
      { signKey: forger.signingSeed, publicKey: forger.signingPublic },
      ctx.cipherSuite,
    );
    const group = await createGroup(
      new Uint8Array(32).fill(1),
      forged.publicPackage,
      forged.privatePackage,
      [],
      ctx.cipherSuite,
    );
    const commit = await createCommit(
      { state: group, cipherSuite: ctx.cipherSuite },
      {
        extraProposals: [
          { proposalType: 'add', add: { keyPackage: decodeKeyPackageMessage(bobKp.keyPackage) } },
        ],
      },
    );
    const welcome = encodeMlsMessage({
      version: 'mls10',
      wireformat: 'mls_welcome',
      welcome: commit.welcome!,
    });
    const tree = encodeRatchetTree(commit.newState.ratchetTree);
    await expect(joinFromWelcome(ctx, welcome, tree, [bobKp])).rejects.toBeInstanceOf(VerificationError);
  });

  test('a Welcome with a group id that is not 32 bytes is refused', async () => {
    const alice = makeIdentity();
    const bob = makeIdentity();
    const now = nowSeconds();
    const bobKp = await generateKeyPackage(ctx, bob, now);
    const own = await generateKeyPackageWithKey(
      { credentialType: 'basic', identity: credentialIdentityOf(alice.userId) },
      relayCapabilities(),
      { notBefore: BigInt(now - 60), notAfter: BigInt(now + 3600) },
      [],
      { signKey: alice.signingSeed, publicKey: alice.signingPublic },
      ctx.cipherSuite,
    );
    const group = await createGroup(
      new Uint8Array(16),
      own.publicPackage,
      own.privatePackage,
      [],
      ctx.cipherSuite,
      ctx.clientConfig,
    );
    const commit = await createCommit(
      { state: group, cipherSuite: ctx.cipherSuite },
      {
        extraProposals: [
          { proposalType: 'add', add: { keyPackage: decodeKeyPackageMessage(bobKp.keyPackage) } },
        ],
      },
    );
    const welcome = encodeMlsMessage({
      version: 'mls10',
      wireformat: 'mls_welcome',
      welcome: commit.welcome!,
    });
    await expect(
      joinFromWelcome(ctx, welcome, encodeRatchetTree(commit.newState.ratchetTree), [bobKp]),
    ).rejects.toThrow(/32 bytes/);
  });
});
