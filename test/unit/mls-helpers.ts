// Shared fixtures for the mls*.test.ts files: real identities from random Ed25519 seeds.
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { userIdFromKey } from '../../framework/relay/mls/auth.js';
import {
  commitGroup,
  createGroup,
  generateKeyPackage,
  joinFromWelcome,
  processGroupMessage,
  type GroupSession,
  type MlsContext,
  type ProcessedGroupMessage,
} from '../../framework/relay/mls/index.js';
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

/** One member of a test group: who it is and its current session. */
export interface Participant {
  readonly id: SigningIdentity;
  state: GroupSession;
}

/**
 * A group of `size` members made the way a client does it: createGroup, one commit adding everyone
 * by value, joinFromWelcome for each invitee. Index 0 is the creator and committer (leaf 0).
 */
export async function buildGroup(
  ctx: MlsContext,
  size: number,
  now: number = nowSeconds(),
): Promise<Participant[]> {
  const creator = makeIdentity();
  const created = await createGroup(ctx, creator, { now });
  const members: Participant[] = [{ id: creator, state: created.state }];
  if (size < 2) return members;
  const invitees = Array.from({ length: size - 1 }, () => makeIdentity());
  const packages = await Promise.all(invitees.map((id) => generateKeyPackage(ctx, id, now)));
  const commit = await commitGroup(ctx, created.state, { adds: packages.map((kp) => kp.keyPackage), now });
  members[0]!.state = commit.state;
  if (commit.welcome === undefined) throw new Error('no Welcome for the invitees');
  for (const [i, id] of invitees.entries()) {
    const joined = await joinFromWelcome(ctx, commit.welcome, commit.ratchetTree, [packages[i]!], {
      members: { min: 2, max: 250 },
    });
    members.push({ id, state: joined.state });
  }
  return members;
}

/** Hands `message` from `from` to every other member, keeping each one's new state. */
export async function deliver(
  ctx: MlsContext,
  members: readonly Participant[],
  from: Participant,
  message: Uint8Array,
): Promise<Map<Participant, ProcessedGroupMessage>> {
  const results = new Map<Participant, ProcessedGroupMessage>();
  for (const m of members) {
    if (m === from) continue;
    const got = await processGroupMessage(ctx, m.state, message);
    if (got.kind !== 'removed') m.state = got.state;
    results.set(m, got);
  }
  return results;
}
