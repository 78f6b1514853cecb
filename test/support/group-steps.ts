// Fixtures for the group step tests (test/unit/steps-group-*.test.ts): real identities, real MLS,
// real sealing with a tiny proof of work, and the step context each member's client would build.
import type { UnixSeconds, UserIdHex } from '../../framework/relay/brand.js';
import { toHex } from '../../framework/relay/bytes.js';
import { ManualClock } from '../../framework/relay/clock.js';
import { systemRandom } from '../../framework/relay/random.js';
import { decodeEnvelope, decodeGroupPayload, decodeInnerPayload } from '../../framework/relay/envelope.js';
import { generateIdentity, type Identity } from '../../framework/relay/identity.js';
import type { Loaded } from '../../framework/relay/group-records.js';
import type { FetchedPeerBundle } from '../../framework/relay/group-types.js';
import type { OpenedEnvelope } from '../../framework/relay/inbound-envelope.js';
import {
  createMlsContext,
  ExporterCache,
  generateKeyPackage,
  joinFromWelcome,
  type GeneratedKeyPackage,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import { PowMiner } from '../../framework/relay/pow.js';
import { createOpener } from '../../framework/relay/seal.js';
import type { GroupStepContext } from '../../framework/relay/steps/group-write.js';
import type { OutboxRecord } from '../../framework/relay/store.js';

export const NOW = Math.floor(Date.now() / 1000) as UnixSeconds;
export const miner = new PowMiner({ workers: 0 });

/** One client as far as group steps see it. */
export interface Member {
  identity: Identity;
  hex: UserIdHex;
  ctx: GroupStepContext;
  clock: ManualClock;
  /** Its current KeyPackage, as its published bundle offers it. */
  kp: GeneratedKeyPackage;
  bundle: FetchedPeerBundle;
}

let mlsCtx: MlsContext | undefined;

export async function member(
  opts: { maxMembers?: number; updateEveryMessages?: number } = {},
): Promise<Member> {
  mlsCtx ??= await createMlsContext();
  const identity = generateIdentity();
  const clock = new ManualClock(NOW);
  const kp = await generateKeyPackage(mlsCtx, identity, NOW);
  const hex = toHex(identity.userId) as UserIdHex;
  return {
    identity,
    hex,
    clock,
    kp,
    ctx: {
      mls: mlsCtx,
      selfId: identity.userId,
      clock,
      random: systemRandom,
      seal: {
        identity,
        mls: mlsCtx,
        clock,
        random: systemRandom,
        prefix: 'relay',
        miner,
        accessKeys: new ExporterCache(),
        onPow: () => undefined,
      },
      maxMembers: opts.maxMembers ?? 250,
      updateEveryMessages: opts.updateEveryMessages ?? 1000,
    },
    bundle: {
      record: { userId: hex, identityKey: identity.signingPublic, sealKey: identity.sealPublic, powBits: 4 },
      keyPackage: kp.keyPackage,
      powBits: 4,
    },
  };
}

/** What the recipient's inbox pipeline makes of a sealed row (PoW and replay checks aside). */
export async function openRow(to: Member, row: OutboxRecord): Promise<OpenedEnvelope> {
  const envelope = decodeEnvelope(row.payload);
  const opener = await createOpener(to.identity.sealSecret);
  const inner = decodeInnerPayload(
    await opener.open({
      recipientId: to.identity.userId,
      enc: envelope.enc,
      ciphertext: envelope.ciphertext,
      sentAt: envelope.sentAt,
    }),
  );
  return { envelope, inner, digest: toHex(envelope.enc), claim: undefined as never };
}

/** Joins from a sealed group Welcome row with the member's bundle KeyPackage. */
export async function joinRow(to: Member, row: OutboxRecord) {
  const opened = await openRow(to, row);
  const joined = await joinFromWelcome(to.ctx.mls, opened.inner.mls, opened.inner.ratchetTree, [to.kp], {
    members: { min: 2, max: 250 },
  });
  return { opened, joined };
}

/** The MLS message inside a group topic row. */
export const topicMessage = (row: OutboxRecord): Uint8Array => decodeGroupPayload(row.payload);

/** The group as the next step loads it: a deep copy of its bookkeeping, so steps may edit it. */
export function reload(loaded: Loaded): Loaded {
  return { ...loaded, meta: JSON.parse(JSON.stringify(loaded.meta)) };
}
