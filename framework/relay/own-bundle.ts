/**
 * Our own KeyBundle's lifecycle (PROTOCOL.md §4): a fresh single-use KeyPackage after a Welcome
 * consumed the current one, a daily refresh anyway, retention of superseded private keys, and a
 * re-publish whenever someone else's payload shows up on our retained keys topic.
 */
import type { PowBits, UnixSeconds } from './brand.js';
import { decodeKeyBundle, encodeKeyBundle, nextIssuedAt, signKeyBundle, type KeyBundle } from './bundle.js';
import { equalBytes, toHex } from './bytes.js';
import type { Identity } from './identity.js';
import { generateKeyPackage, type MlsContext } from './mls/index.js';
import { formatProfile, type Profile } from './profile.js';
import type { OwnBundle, RelayStore, StoredKeyPackage } from './store.js';

const DAY = 86_400;
/** A consumed KeyPackage's keys stay usable this long for initiators who fetched it late. */
export const CONSUMED_GRACE_SECONDS = 600;
/** Superseded, unused KeyPackages are kept this long, then deleted. */
export const SUPERSEDED_RETENTION_SECONDS = 7 * DAY;

/** What ensureOwnBundle() needs to publish and rotate our signed KeyBundle. */
export interface OwnBundleDeps {
  identity: Identity;
  store: RelayStore;
  mls: MlsContext;
  powBits: PowBits;
  displayName?: string;
  /** Published as key 7 (PROTOCOL.md §8); a bot's comes from its metadata (framework/bot/profile.ts). */
  profile?: Profile;
}

/** Whether the stored bundle says what we would publish now: pow_bits, display name and profile. */
function publishesCurrentFields(bundle: OwnBundle, deps: OwnBundleDeps): boolean {
  let published: KeyBundle;
  try {
    published = decodeKeyBundle(bundle.bytes);
  } catch {
    return false; // unreadable (written by another version): replace it
  }
  const text = (p: Profile | undefined) => (p === undefined ? undefined : formatProfile(p));
  return (
    published.powBits === deps.powBits &&
    published.displayName === deps.displayName &&
    text(published.profile) === text(deps.profile)
  );
}

function needsFresh(
  bundle: OwnBundle | undefined,
  kps: StoredKeyPackage[],
  now: UnixSeconds,
  deps: OwnBundleDeps,
): boolean {
  if (!bundle) return true;
  // A new release of the bot (another command, a new description) is published at its start.
  if (!publishesCurrentFields(bundle, deps)) return true;
  if (now - bundle.issuedAt >= DAY) return true;
  const current = kps.find((k) => k.ref === bundle.keyPackageRef);
  return !current || current.consumedAt !== undefined || current.notAfter <= now + DAY;
}

/** Which stored KeyPackages may be deleted now. */
export function expiredKeyPackages(
  kps: StoredKeyPackage[],
  currentRef: string | undefined,
  now: number,
): string[] {
  return kps
    .filter((k) => k.ref !== currentRef)
    .filter(
      (k) =>
        (k.consumedAt !== undefined && now - k.consumedAt > CONSUMED_GRACE_SECONDS) ||
        (k.supersededAt !== undefined && now - k.supersededAt > SUPERSEDED_RETENTION_SECONDS) ||
        k.notAfter < now,
    )
    .map((k) => k.ref);
}

/**
 * Returns the bundle to publish, minting a new KeyPackage and bundle when the current one is
 * consumed, stale or missing, and pruning private keys past their retention.
 */
export async function ensureOwnBundle(deps: OwnBundleDeps, now: UnixSeconds): Promise<OwnBundle> {
  const { store } = deps;
  let bundle = await store.loadOwnBundle();
  const kps = await store.listKeyPackages();
  if (needsFresh(bundle, kps, now, deps)) {
    const kp = await generateKeyPackage(deps.mls, deps.identity, now);
    const ref = toHex(kp.ref);
    await store.putKeyPackage({
      ref,
      keyPackage: kp.keyPackage,
      privateKeyPackage: kp.privateKeyPackage,
      createdAt: now,
      notAfter: kp.notAfter as UnixSeconds,
    });
    await store.markKeyPackagesSuperseded(ref, now);
    const signed = signKeyBundle(
      {
        keyPackage: kp.keyPackage,
        sealedSenderKey: deps.identity.sealPublic,
        issuedAt: nextIssuedAt(now, bundle?.issuedAt) as UnixSeconds,
        powBits: deps.powBits,
        ...(deps.displayName !== undefined ? { displayName: deps.displayName } : {}),
        ...(deps.profile !== undefined ? { profile: deps.profile } : {}),
      },
      deps.identity,
    );
    bundle = { bytes: encodeKeyBundle(signed), issuedAt: signed.issuedAt, keyPackageRef: ref };
    await store.saveOwnBundle(bundle);
  }
  const prunable = expiredKeyPackages(await store.listKeyPackages(), bundle?.keyPackageRef, now);
  if (prunable.length > 0) await store.deleteKeyPackages(prunable);
  return bundle as OwnBundle;
}

/** A retained payload on our keys topic that is not our current bundle must be overwritten. */
export function isForeignBundle(current: OwnBundle | undefined, payload: Uint8Array): boolean {
  return !current || !equalBytes(current.bytes, payload);
}
