/**
 * Per-operation CPU of the key handling around one 1:1 command, and the per-command crypto sum it
 * adds up to, before and after issue 12's crypto round (bench/seal.ts prints it).
 *
 * "Before" rebuilds what the code did, with the same node:crypto calls: an HPKE Encap's ephemeral
 * as generateKeyPairSync + DH with the base point + a public KeyObject nobody used, and Decap's
 * ephemeral public key through WebCrypto's raw import. "After" calls x25519-node.ts itself. The
 * per-command counts of the other primitives (DH, Ed25519, AES-GCM, HMAC, SHA-256) were counted on
 * a live 1:1 exchange (node:crypto wrapped, 200 round trips): they did not change.
 *
 * Process CPU, not wall time, and every alternative is measured in each of ROUNDS interleaved
 * rounds, so machine load hits them alike; the median and the spread (min–max) are printed.
 */
import {
  KeyObject,
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  randomBytes,
  randomFillSync,
  sign,
  verify,
} from 'node:crypto';
import { x25519 } from '@noble/curves/ed25519.js';
import { importOkpPrivate, importOkpPublic, importPkcs8 } from '../framework/relay/okp-import.js';
import { X25519Key } from '../framework/relay/x25519-node.js';

const ROUNDS = 5;
const OPS = 400;
const SLOW_OPS = 40;

const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');
const BASE_POINT = createPublicKey({
  key: Buffer.concat([SPKI_X25519, Uint8Array.of(9), new Uint8Array(31)]),
  format: 'der',
  type: 'spki',
});

type Op = () => unknown;

interface Measured {
  name: string;
  median: number;
  min: number;
  max: number;
}

/** µs of process CPU per call, one sample. */
async function sample(op: Op, n: number): Promise<number> {
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) await op();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}

async function measureAll(ops: Array<[string, Op, number?]>): Promise<Map<string, Measured>> {
  for (const [, op] of ops) for (let i = 0; i < 50; i++) await op();
  const samples = new Map<string, number[]>(ops.map(([name]) => [name, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, op, n] of ops) samples.get(name)!.push(await sample(op, n ?? OPS));
  }
  const out = new Map<string, Measured>();
  for (const [name, values] of samples) {
    const sorted = [...values].sort((a, b) => a - b);
    out.set(name, { name, median: sorted[sorted.length >> 1]!, min: sorted[0]!, max: sorted.at(-1)! });
  }
  return out;
}

/** Per side of one 1:1 command (receive + reply), counted on a live exchange. */
const PER_COMMAND = { dh: 2, sign: 1, verify: 1, gcm: 6, hmac: 29, sha256: 5 } as const;

export async function cryptoOpsReport(): Promise<void> {
  const peer = generateKeyPairSync('x25519');
  const peerRaw = new Uint8Array(diffieHellman({ privateKey: peer.privateKey, publicKey: BASE_POINT }));
  const peerJwk = { kty: 'OKP', crv: 'X25519', x: Buffer.from(peerRaw).toString('base64url') };
  const ed = generateKeyPairSync('ed25519');
  const edSeed = new Uint8Array(randomBytes(32));
  const edPub = new Uint8Array(
    createPublicKey(importPkcs8('Ed25519', edSeed)).export({ format: 'der', type: 'spki' }).subarray(12),
  );
  const msg = randomBytes(300);
  const sig = sign(null, msg, ed.privateKey);
  const aesKey = randomBytes(16);
  const aad = randomBytes(40);
  const prk = randomBytes(32);
  const secret = new Uint8Array(randomBytes(32));
  const gcmPair = (): void => {
    const nonce = randomBytes(12);
    const c = createCipheriv('aes-128-gcm', aesKey, nonce);
    c.setAAD(aad);
    const ct = Buffer.concat([c.update(msg), c.final()]);
    const d = createDecipheriv('aes-128-gcm', aesKey, nonce);
    d.setAAD(aad);
    d.setAuthTag(c.getAuthTag());
    Buffer.concat([d.update(ct), d.final()]);
  };

  const m = await measureAll([
    // HPKE Encap's ephemeral key pair (private key + the 32 public bytes enc).
    [
      'ephemeral: before (generateKeyPairSync + base-point DH + unused public KeyObject)',
      () => {
        const k = generateKeyPairSync('x25519').privateKey;
        createPublicKey(k);
        return diffieHellman({ privateKey: k, publicKey: BASE_POINT });
      },
    ],
    [
      'ephemeral: after (X25519Key.generateEphemeral: generateKeyPairSync + base-point DH)',
      () => X25519Key.generateEphemeral(),
    ],
    [
      'ephemeral: generateKeyPairSync, publicKeyEncoding SPKI DER',
      () => generateKeyPairSync('x25519', { publicKeyEncoding: { type: 'spki', format: 'der' } } as never),
    ],
    [
      'ephemeral: generateKeyPairSync, publicKeyEncoding JWK (an export: not used)',
      () => generateKeyPairSync('x25519', { publicKeyEncoding: { format: 'jwk' } } as never),
    ],
    [
      'ephemeral: random bytes + PKCS#8 import + base-point DH',
      () =>
        diffieHellman({
          privateKey: importPkcs8('X25519', randomFillSync(new Uint8Array(32))),
          publicKey: BASE_POINT,
        }),
      SLOW_OPS,
    ],
    [
      'ephemeral: random bytes + JWK import + base-point DH',
      () =>
        diffieHellman({
          privateKey: importOkpPrivate('X25519', randomFillSync(new Uint8Array(32))),
          publicKey: BASE_POINT,
        }),
    ],
    [
      'ephemeral: @noble/curves x25519.getPublicKey',
      () => x25519.getPublicKey(randomFillSync(new Uint8Array(32))),
      SLOW_OPS,
    ],
    // Decap: the peer's ephemeral public key from its 32 bytes.
    [
      'X25519 public import: before (WebCrypto raw + KeyObject.from)',
      async () =>
        KeyObject.from(
          await globalThis.crypto.subtle.importKey('raw', peerRaw, { name: 'X25519' }, true, []),
        ),
    ],
    [
      'X25519 public import: SPKI DER',
      () => createPublicKey({ key: Buffer.concat([SPKI_X25519, peerRaw]), format: 'der', type: 'spki' }),
    ],
    ['X25519 public import: after (JWK)', () => createPublicKey({ key: peerJwk, format: 'jwk' })],
    // First contact and MLS HPKE: private keys from their bytes.
    ['X25519 private import: before (PKCS#8 DER)', () => importPkcs8('X25519', secret), SLOW_OPS],
    ['X25519 private import: after (JWK)', () => importOkpPrivate('X25519', secret)],
    ['Ed25519 private import: before (PKCS#8 DER)', () => importPkcs8('Ed25519', edSeed), SLOW_OPS],
    ['Ed25519 private import: after (JWK)', () => importOkpPrivate('Ed25519', edSeed)],
    [
      'Ed25519 public import: before (SPKI DER)',
      () => createPublicKey({ key: Buffer.concat([SPKI_ED25519, edPub]), format: 'der', type: 'spki' }),
    ],
    ['Ed25519 public import: after (JWK)', () => importOkpPublic('Ed25519', edPub)],
    // The rest of a command, unchanged.
    ['X25519 DH', () => diffieHellman({ privateKey: peer.privateKey, publicKey: peer.publicKey })],
    ['Ed25519 sign', () => sign(null, msg, ed.privateKey)],
    ['Ed25519 verify', () => verify(null, msg, ed.publicKey, sig)],
    ['AES-128-GCM seal + open (300 B), per operation x2', gcmPair],
    ['HMAC-SHA256', () => createHmac('sha256', prk).update(msg.subarray(0, 64)).digest()],
    ['SHA-256', () => createHash('sha256').update(msg).digest()],
  ]);

  const us = (name: string): number => m.get(name)!.median;
  console.log(`per-operation process CPU, median of ${ROUNDS} interleaved rounds (min–max):`);
  for (const v of m.values()) {
    console.log(
      `  ${v.median.toFixed(1).padStart(7)} µs  (${v.min.toFixed(1)}–${v.max.toFixed(1)})  ${v.name}`,
    );
  }
  const rest =
    PER_COMMAND.dh * us('X25519 DH') +
    PER_COMMAND.sign * us('Ed25519 sign') +
    PER_COMMAND.verify * us('Ed25519 verify') +
    (PER_COMMAND.gcm / 2) * us('AES-128-GCM seal + open (300 B), per operation x2') +
    PER_COMMAND.hmac * us('HMAC-SHA256') +
    PER_COMMAND.sha256 * us('SHA-256');
  const before =
    rest +
    us('ephemeral: before (generateKeyPairSync + base-point DH + unused public KeyObject)') +
    us('X25519 public import: before (WebCrypto raw + KeyObject.from)');
  const after =
    rest +
    us('ephemeral: after (X25519Key.generateEphemeral: generateKeyPairSync + base-point DH)') +
    us('X25519 public import: after (JWK)');
  const counts = Object.entries(PER_COMMAND)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
  console.log(`per-command crypto sum (one ephemeral, one public import, ${counts}):`);
  console.log(
    `  before ${before.toFixed(0)} µs, after ${after.toFixed(0)} µs (${(before - after).toFixed(0)} µs less)`,
  );
  const welcome = (name: string): number => us(`X25519 private import: ${name}`);
  console.log(
    `  first contact, per X25519 private key imported (MLS Welcome, HPKE): before ${welcome('before (PKCS#8 DER)').toFixed(0)} µs, after ${welcome('after (JWK)').toFixed(0)} µs`,
  );
}
