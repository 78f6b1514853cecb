/**
 * Seal/open cost against the floor it cannot beat: one X25519 DH plus one AES-256-GCM encryption
 * of the same plaintext with node:crypto, measured in the same run so machine noise hits both.
 */
import { createCipheriv, diffieHellman, generateKeyPairSync, randomBytes } from 'node:crypto';
import { x25519 } from '@noble/curves/ed25519.js';
import { asUnixSeconds, asUserId } from '../framework/relay/brand.js';
import { createOpener, open, seal } from '../framework/relay/seal.js';

const ITERATIONS = 2000;
const WARMUP = 200;
const PLAINTEXT_BYTES = 512;

async function meanMicros(iterations: number, op: () => Promise<unknown> | unknown): Promise<number> {
  for (let i = 0; i < WARMUP; i++) await op();
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await op();
  return Number(process.hrtime.bigint() - start) / 1000 / iterations;
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
  const aad = randomBytes(24);
  const raw = await meanMicros(ITERATIONS, () => {
    const shared = diffieHellman({ privateKey: a.privateKey, publicKey: b.publicKey });
    const cipher = createCipheriv('aes-256-gcm', aesKey, randomBytes(12));
    cipher.setAAD(aad);
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

  const line = (name: string, us: number): string =>
    `${name}: ${us.toFixed(1)} µs/op (${(us / raw).toFixed(1)}x raw X25519+AES-GCM)`;
  console.log(`seal/open, ${PLAINTEXT_BYTES}-byte plaintext, mean of ${ITERATIONS} ops`);
  console.log(line('seal', sealUs));
  console.log(line('open (createOpener, key imported once)', openUs));
  console.log(line('open (one-shot, imports the key each call)', oneShotUs));
  console.log(`raw X25519 DH + AES-256-GCM (node:crypto): ${raw.toFixed(1)} µs/op`);
}
