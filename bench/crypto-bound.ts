/**
 * The raw cryptographic bound of one 1:1 command on the bot's side (issue 12), on node:crypto with
 * every long-lived key imported once: HPKE open of the command (X25519 DH + HKDF + AES-GCM), MLS
 * processing of it (Ed25519 verify + AES-GCM for the sender data and the content), MLS encryption
 * of the reply (Ed25519 sign + AES-GCM twice) and the HPKE seal of the reply (X25519 key generation
 * + DH + HKDF + AES-GCM). No encoding, no framing, no store: the floor no implementation can beat,
 * measured in the same run as the bot so that machine noise hits both.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  diffieHellman,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';

const PAYLOAD_BYTES = 300;
const AAD = randomBytes(40);

function gcm(key: Buffer, data: Buffer, decrypt: boolean): void {
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-128-gcm', key, nonce);
  c.setAAD(AAD);
  const ct = Buffer.concat([c.update(data), c.final()]);
  if (!decrypt) return;
  const d = createDecipheriv('aes-128-gcm', key, nonce);
  d.setAAD(AAD);
  d.setAuthTag(c.getAuthTag());
  Buffer.concat([d.update(ct), d.final()]);
}

/** HKDF-Extract + two Expands, as an HPKE key schedule does at least. */
function keySchedule(secret: Buffer): Buffer {
  const prk = createHmac('sha256', Buffer.alloc(32)).update(secret).digest();
  createHmac('sha256', prk).update('base_nonce').digest();
  return createHmac('sha256', prk).update('key').digest().subarray(0, 16);
}

function once(keys: {
  bot: KeyObject;
  peer: KeyObject;
  sign: KeyObject;
  verify: KeyObject;
  data: Buffer;
}): void {
  // HPKE open: one DH with our static key.
  gcm(keySchedule(diffieHellman({ privateKey: keys.bot, publicKey: keys.peer })), keys.data, true);
  // MLS process: sender data, then content, and the sender's signature.
  gcm(keys.data.subarray(0, 16), keys.data.subarray(0, 32), true);
  gcm(keys.data.subarray(0, 16), keys.data, true);
  const sig = sign(null, keys.data, keys.sign);
  // MLS encrypt of the reply: its signature and two encryptions (the verify stands for the
  // command's signature check, the sign above for the reply's).
  if (!verify(null, keys.data, keys.verify, sig)) throw new Error('raw verify failed');
  gcm(keys.data.subarray(0, 16), keys.data, false);
  gcm(keys.data.subarray(0, 16), keys.data.subarray(0, 32), false);
  // HPKE seal to the peer: an ephemeral key and one DH.
  const eph = generateKeyPairSync('x25519').privateKey;
  gcm(keySchedule(diffieHellman({ privateKey: eph, publicKey: keys.peer })), keys.data, false);
}

/** Mean ms of CPU-bound work per command, over `iterations` after a warm-up. */
export function rawCommandCryptoMs(iterations = 2000): number {
  const bot = generateKeyPairSync('x25519');
  const peer = generateKeyPairSync('x25519');
  const ed = generateKeyPairSync('ed25519');
  const keys = {
    bot: bot.privateKey,
    peer: peer.publicKey,
    sign: ed.privateKey,
    verify: ed.publicKey,
    data: randomBytes(PAYLOAD_BYTES),
  };
  for (let i = 0; i < 200; i++) once(keys);
  const cpu = process.cpuUsage();
  for (let i = 0; i < iterations; i++) once(keys);
  const used = process.cpuUsage(cpu);
  // CPU time, like the bot's CPU per command it is compared with (a busy machine inflates wall time).
  return (used.user + used.system) / 1000 / iterations;
}
