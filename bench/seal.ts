/**
 * Seal/open cost against the floor it cannot beat: one X25519 DH plus one AES-256-GCM encryption
 * of the same plaintext with node:crypto, measured in the same run so machine noise hits both.
 *
 * Also measured in the same run, so the comparison survives a noisy machine: the @hpke/core stack
 * seal.ts used before, and the `hpke` package with its WebCrypto primitives swapped for
 * node:crypto ones one step at a time, which shows where the time went.
 */
import { createCipheriv, diffieHellman, generateKeyPairSync, randomBytes } from 'node:crypto';
import { Aes256Gcm, CipherSuite as CoreSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { x25519 } from '@noble/curves/ed25519.js';
import * as hpke from 'hpke';
import { asUnixSeconds, asUserId } from '../framework/relay/brand.js';
import { createOpener, open, seal, sealAad, sealInfo } from '../framework/relay/seal.js';
import { cryptoOpsReport } from './crypto-ops.js';
import {
  AEAD_AES_256_GCM,
  DHKEM_X25519_HKDF_SHA256,
  KDF_HKDF_SHA256,
} from '../framework/relay/seal-node-primitives.js';

const ITERATIONS = 2000;
const COMPARISON_ITERATIONS = 1000;
const WARMUP = 200;
const PLAINTEXT_BYTES = 512;

async function meanMicros(iterations: number, op: () => Promise<unknown> | unknown): Promise<number> {
  for (let i = 0; i < WARMUP; i++) await op();
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await op();
  return Number(process.hrtime.bigint() - start) / 1000 / iterations;
}

interface SealOpenCost {
  seal: number;
  open: number;
}

/**
 * The same work seal()/createOpener().open() do, on any `hpke` suite: deserialize the recipient
 * key per seal (it arrives as bytes from a bundle), open with a pre-imported key pair.
 */
async function hpkeSuiteCost<K extends hpke.Key>(
  suite: hpke.CipherSuite<K>,
  info: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
): Promise<SealOpenCost> {
  const pair = await suite.GenerateKeyPair();
  const pkBytes = await suite.SerializePublicKey(pair.publicKey);
  const sealOnce = async (): Promise<{ encapsulatedSecret: Uint8Array; ciphertext: Uint8Array }> =>
    suite.Seal(await suite.DeserializePublicKey(pkBytes), plaintext, { info, aad });
  const sealed = await sealOnce();
  return {
    seal: await meanMicros(COMPARISON_ITERATIONS, sealOnce),
    open: await meanMicros(COMPARISON_ITERATIONS, () =>
      suite.Open(pair, sealed.encapsulatedSecret, sealed.ciphertext, { info, aad }),
    ),
  };
}

/** What seal.ts did before: @hpke/core on WebCrypto, opening with an imported key pair. */
async function hpkeCoreCost(info: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Promise<SealOpenCost> {
  const suite = new CoreSuite({
    kem: new DhkemX25519HkdfSha256(),
    kdf: new HkdfSha256(),
    aead: new Aes256Gcm(),
  });
  const recipientKey = await suite.kem.generateKeyPair();
  const pkBytes = await suite.kem.serializePublicKey(recipientKey.publicKey);
  const sealOnce = async (): Promise<{ enc: ArrayBuffer; ct: ArrayBuffer }> =>
    suite.seal({ recipientPublicKey: await suite.kem.deserializePublicKey(pkBytes), info }, plaintext, aad);
  const sealed = await sealOnce();
  return {
    seal: await meanMicros(COMPARISON_ITERATIONS, sealOnce),
    open: await meanMicros(COMPARISON_ITERATIONS, () =>
      suite.open({ recipientKey, enc: sealed.enc, info }, sealed.ct, aad),
    ),
  };
}

export async function run(): Promise<void> {
  const recipientId = asUserId(randomBytes(16));
  const secret = new Uint8Array(randomBytes(32));
  const recipientSealKey = x25519.getPublicKey(secret);
  const plaintext = new Uint8Array(randomBytes(PLAINTEXT_BYTES));
  const sentAt = asUnixSeconds(Math.floor(Date.now() / 1000));
  const hint = new Uint8Array(4);

  const a = generateKeyPairSync('x25519');
  const b = generateKeyPairSync('x25519');
  const aesKey = randomBytes(32);
  const rawAad = randomBytes(24);
  const raw = await meanMicros(ITERATIONS, () => {
    const shared = diffieHellman({ privateKey: a.privateKey, publicKey: b.publicKey });
    const cipher = createCipheriv('aes-256-gcm', aesKey, randomBytes(12));
    cipher.setAAD(rawAad);
    return [shared, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()];
  });

  const sealed = await seal({ recipientId, recipientSealKey, plaintext, sentAt, hint });
  const sealUs = await meanMicros(ITERATIONS, () =>
    seal({ recipientId, recipientSealKey, plaintext, sentAt, hint }),
  );
  const opener = await createOpener(secret);
  const openUs = await meanMicros(ITERATIONS, () => opener.open({ recipientId, ...sealed, sentAt, hint }));
  const oneShotUs = await meanMicros(ITERATIONS / 4, () =>
    open({ recipientId, recipientSealSecret: secret, ...sealed, sentAt, hint }),
  );

  const info = sealInfo(recipientId);
  const aad = sealAad(sentAt, hint);
  const before = await hpkeCoreCost(info, aad, plaintext);
  const steps: Array<[string, SealOpenCost]> = [
    [
      'hpke, all WebCrypto',
      await hpkeSuiteCost(
        new hpke.CipherSuite(hpke.KEM_DHKEM_X25519_HKDF_SHA256, hpke.KDF_HKDF_SHA256, hpke.AEAD_AES_256_GCM),
        info,
        aad,
        plaintext,
      ),
    ],
    [
      'hpke, node KDF + AEAD, WebCrypto KEM',
      await hpkeSuiteCost(
        new hpke.CipherSuite(hpke.KEM_DHKEM_X25519_HKDF_SHA256, KDF_HKDF_SHA256, AEAD_AES_256_GCM),
        info,
        aad,
        plaintext,
      ),
    ],
    [
      'hpke, node KEM + KDF + AEAD',
      await hpkeSuiteCost(
        new hpke.CipherSuite(DHKEM_X25519_HKDF_SHA256, KDF_HKDF_SHA256, AEAD_AES_256_GCM),
        info,
        aad,
        plaintext,
      ),
    ],
  ];

  const x = (us: number): string => `${(us / raw).toFixed(1)}x raw`;
  const line = (name: string, us: number): string =>
    `${name}: ${us.toFixed(1)} µs/op (${(us / raw).toFixed(1)}x raw X25519+AES-GCM)`;
  console.log(`seal/open, ${PLAINTEXT_BYTES}-byte plaintext, mean of ${ITERATIONS} ops`);
  console.log(line('seal', sealUs));
  console.log(line('open (createOpener, key imported once)', openUs));
  console.log(line('open (one-shot, imports the key each call)', oneShotUs));
  console.log(`raw X25519 DH + AES-256-GCM (node:crypto): ${raw.toFixed(1)} µs/op`);
  console.log(`same run, mean of ${COMPARISON_ITERATIONS} ops each:`);
  for (const [name, cost] of [['previous: @hpke/core (WebCrypto)', before] as const, ...steps]) {
    console.log(
      `  ${name}: seal ${cost.seal.toFixed(1)} µs (${x(cost.seal)}), open ${cost.open.toFixed(1)} µs (${x(cost.open)})`,
    );
  }
  console.log(
    `  seal.ts now vs @hpke/core: seal ${(before.seal / sealUs).toFixed(1)}x, open ${(before.open / openUs).toFixed(1)}x faster`,
  );
  console.log('\nkey handling around one 1:1 command (issue 12):');
  await cryptoOpsReport();
}
