/** Checks the MLS group tests (mls-group*.test.ts) share: in sync, broadcast, impostor KeyPackages. */
import { generateKeyPackageWithKey } from 'ts-mls';
import { toHex } from '../../framework/relay/bytes.js';
import { credentialIdentityOf } from '../../framework/relay/mls/auth.js';
import { encodeKeyPackageMessage, relayCapabilities } from '../../framework/relay/mls/keypackage.js';
import {
  encryptApplication,
  epochOf,
  exportSecret,
  membersOf,
  type GroupSession,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import { unwrap } from '../../framework/relay/mls/state.js';
import { dec, deliver, enc, makeIdentity, nowSeconds, type Participant } from './mls-helpers.js';

export const exporter = (ctx: MlsContext, s: GroupSession): Promise<Uint8Array> =>
  exportSecret(ctx, s, 'test', new Uint8Array(0), 32);

export function leafHpkeKey(session: GroupSession, leafIndex: number): Uint8Array {
  const node = unwrap(session).group.ratchetTree[leafIndex * 2];
  if (node?.nodeType !== 'leaf') throw new Error('blank leaf');
  return node.leaf.hpkePublicKey;
}

/** Sends one application message from `from` and checks every other member reads it. */
export async function broadcast(
  ctx: MlsContext,
  members: readonly Participant[],
  from: Participant,
  text: string,
): Promise<void> {
  const out = await encryptApplication(ctx, from.state, enc(text));
  from.state = out.state;
  const results = await deliver(ctx, members, from, out.message);
  for (const got of results.values()) {
    expect(got.kind).toBe('application');
    expect(dec(got.plaintext)).toBe(text);
    expect(got.sender.identityKey).toEqual(from.id.signingPublic);
    expect(got.epoch).toBe(out.epoch);
  }
}

export async function expectInSync(ctx: MlsContext, members: readonly Participant[]): Promise<void> {
  const [first, ...rest] = members;
  const epoch = epochOf(first!.state);
  const secret = await exporter(ctx, first!.state);
  const roster = membersOf(first!.state).map((m) => `${m.leafIndex}:${toHex(m.userId)}`);
  for (const m of rest) {
    expect(epochOf(m.state)).toBe(epoch);
    expect(await exporter(ctx, m.state)).toEqual(secret);
    expect(membersOf(m.state).map((x) => `${x.leafIndex}:${toHex(x.userId)}`)).toEqual(roster);
  }
}

/** A KeyPackage signed by a fresh key whose credential names someone else (PROTOCOL.md §2). */
export async function impostorKeyPackage(ctx: MlsContext): Promise<Uint8Array> {
  const signer = makeIdentity();
  const victim = makeIdentity();
  const now = nowSeconds();
  const { publicPackage } = await generateKeyPackageWithKey(
    { credentialType: 'basic', identity: credentialIdentityOf(victim.userId) },
    relayCapabilities(),
    { notBefore: BigInt(now - 3600), notAfter: BigInt(now + 86400) },
    [],
    { signKey: signer.signingSeed, publicKey: signer.signingPublic },
    ctx.cipherSuite,
  );
  return encodeKeyPackageMessage(publicPackage);
}
