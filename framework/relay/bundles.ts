/**
 * Key bundles on the wire (PROTOCOL.md §4): fetching and verifying a peer's retained bundle, and
 * keeping our own published (refresh, coalesced re-publish when a foreign payload replaced it).
 */
import type { PowBits, UserIdHex } from './brand.js';
import { verifyKeyBundle } from './bundle.js';
import type { Clock } from './clock.js';
import { ProtocolError } from './errors.js';
import { userIdFromHex, type Identity } from './identity.js';
import * as mls from './mls/index.js';
import { ensureOwnBundle, isForeignBundle } from './own-bundle.js';
import type { Profile } from './profile.js';
import type { OwnBundle, PeerRecord, RelayStore } from './store.js';
import { keysTopic } from './topics.js';
import type { PublishOptions, SubscribeOptions } from './transport.js';

const DEFAULT_FETCH_TIMEOUT_MS = 10_000;

/** A peer's verified bundle: the record to keep and the single-use KeyPackage to start with. */
export interface FetchedBundle {
  record: PeerRecord;
  keyPackage: Uint8Array;
  powBits: number;
  /** The peer's signed profile (key 7), when its bundle carries one. */
  profile?: Profile;
}

export interface BundleDeps {
  identity: Identity;
  store: RelayStore;
  mls: mls.MlsContext;
  clock: Clock;
  prefix: string;
  powBits: PowBits;
  displayName?: string;
  profile?: Profile;
  fetchTimeoutMs?: number;
  publish(topic: string, payload: Uint8Array, opts: PublishOptions): Promise<void>;
  subscribe(topic: string, opts: SubscribeOptions): Promise<void>;
  unsubscribe(topic: string): Promise<void>;
  /** A fetched bundle failed verification (counted as a 'bundle_invalid' drop by the caller). */
  onInvalid(topic: string, error: unknown): void;
  fail(e: unknown): void;
  /**
   * Whether this process owns DUTY.bundle (duties.ts). Replicas of one identity share one retained
   * bundle; only its owner mints, publishes or re-publishes it, so they never overwrite each other.
   */
  owns(): boolean;
}

interface BundleWaiter {
  resolve: (payload: Uint8Array) => void;
}

export class Bundles {
  private ownBundle: OwnBundle | undefined;
  private republishing: Promise<void> | undefined;
  /** The refresh running now: a second caller joins it rather than minting a bundle of its own. */
  private refreshing: Promise<void> | undefined;
  private readonly waiters = new Map<string, BundleWaiter[]>();

  constructor(private readonly deps: BundleDeps) {}

  /**
   * Publishes a fresh bundle of ours when the current one is spent, old or lost (owner only). One at
   * a time: taking the bundle and housekeeping duties over at once starts both a republish and a
   * housekeeping refresh, which would each mint a bundle.
   */
  refresh(): Promise<void> {
    this.refreshing ??= this.refreshOnce().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async refreshOnce(): Promise<void> {
    const d = this.deps;
    if (!d.owns()) {
      // What we published as owner may be replaced by the next owner: compare afresh if it is ours again.
      this.ownBundle = undefined;
      return;
    }
    const bundle = await ensureOwnBundle(
      {
        identity: d.identity,
        store: d.store,
        mls: d.mls,
        powBits: d.powBits,
        ...(d.displayName !== undefined ? { displayName: d.displayName } : {}),
        ...(d.profile !== undefined ? { profile: d.profile } : {}),
      },
      d.clock.now(),
    );
    const changed = !this.ownBundle || this.ownBundle.issuedAt !== bundle.issuedAt;
    this.ownBundle = bundle;
    if (changed) {
      await d.publish(keysTopic(d.prefix, d.identity.userId), bundle.bytes, { qos: 1, retain: true });
    }
  }

  /** Coalesces re-publishes: many foreign payloads in a row cause one refresh. */
  scheduleRepublish(force: boolean): void {
    if (this.republishing || !this.deps.owns()) return;
    if (force) this.ownBundle = undefined;
    this.republishing = this.refresh()
      .catch((e) => this.deps.fail(e))
      .finally(() => (this.republishing = undefined));
  }

  /** A payload on our own keys topic: someone else's replaces ours, so ours goes out again. */
  onOwnKeysPayload(payload: Uint8Array): void {
    // A replica that does not own the bundle sees the owner's: not foreign, and not its to answer.
    if (!this.deps.owns()) return;
    if (isForeignBundle(this.ownBundle, payload)) this.scheduleRepublish(true);
  }

  /** Hands a payload to the fetches waiting on its topic; false when none waited. */
  deliver(topic: string, payload: Uint8Array): boolean {
    const waiting = this.waiters.get(topic);
    if (!waiting) return false;
    this.waiters.delete(topic);
    for (const w of waiting) w.resolve(payload);
    return true;
  }

  async fetch(peerHex: UserIdHex): Promise<FetchedBundle> {
    const d = this.deps;
    const topic = keysTopic(d.prefix, userIdFromHex(peerHex));
    const timeoutMs = d.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
    const known = await d.store.getPeer(peerHex);
    const payload = await new Promise<Uint8Array>((resolve, reject) => {
      const waiter: BundleWaiter = { resolve };
      const list = this.waiters.get(topic) ?? [];
      list.push(waiter);
      this.waiters.set(topic, list);
      const timer = setTimeout(() => {
        this.removeWaiter(topic, waiter);
        reject(
          new ProtocolError(
            `no key bundle for ${peerHex} arrived within ${timeoutMs} ms; is the user online once?`,
          ),
        );
      }, timeoutMs);
      waiter.resolve = (p) => {
        clearTimeout(timer);
        resolve(p);
      };
      d.subscribe(topic, { qos: 1 }).catch(reject);
    }).finally(() => void d.unsubscribe(topic).catch(() => undefined));
    let verified: Awaited<ReturnType<typeof verifyKeyBundle>>;
    try {
      verified = await verifyKeyBundle(payload, userIdFromHex(peerHex), {
        now: d.clock.now(),
        ...(known?.bundleIssuedAt !== undefined ? { lastAcceptedIssuedAt: known.bundleIssuedAt } : {}),
        verifier: mls.keyPackageVerifier(d.mls),
      });
    } catch (e) {
      d.onInvalid(topic, e);
      throw e;
    }
    const record: PeerRecord = {
      userId: peerHex,
      identityKey: verified.identityKey,
      sealKey: verified.bundle.sealedSenderKey,
      powBits: verified.bundle.powBits,
      bundleIssuedAt: verified.bundle.issuedAt,
      ...(verified.bundle.displayName !== undefined ? { displayName: verified.bundle.displayName } : {}),
    };
    const { keyPackage, powBits, profile } = verified.bundle;
    return { record, keyPackage, powBits, ...(profile !== undefined ? { profile } : {}) };
  }

  private removeWaiter(topic: string, waiter: BundleWaiter): void {
    const rest = (this.waiters.get(topic) ?? []).filter((w) => w !== waiter);
    if (rest.length) this.waiters.set(topic, rest);
    else this.waiters.delete(topic);
  }
}
