// Shared fixtures for the mls*.test.ts files: real identities from random Ed25519 seeds.
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { userIdFromKey } from '../../framework/relay/mls/auth.js';
import type { SigningIdentity } from '../../framework/relay/mls/keypackage.js';

const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export function ed25519PublicFromSeed(seed: Uint8Array): Uint8Array {
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return new Uint8Array(spki.subarray(spki.length - 32));
}

export function makeIdentity(seed: Uint8Array = new Uint8Array(randomBytes(32))): SigningIdentity {
  const signingPublic = ed25519PublicFromSeed(seed);
  return { userId: userIdFromKey(signingPublic), signingSeed: seed, signingPublic };
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array | undefined): string => new TextDecoder().decode(b);
