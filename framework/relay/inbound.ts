/**
 * The inbox half of the receive pipeline (ARCHITECTURE.md "One inbound message", steps 2–4): the
 * envelope checks, arrival order, the sender binding, then the sender's lane. What happens inside
 * the lane (a Welcome, a message, a group invitation) is the caller's `receive`.
 */
import type { UserIdHex } from './brand.js';
import { toHex } from './bytes.js';
import type { DropReason } from './drops.js';
import type { InnerPayload } from './envelope.js';
import { deriveUserId, userIdToHex, verifySealedSenderKey } from './identity.js';
import type { EnvelopeCheck, OpenedEnvelope } from './inbound-envelope.js';
import type { KeyedSerialQueue } from './keyed-queue.js';
import { MSG_TYPE } from './labels.js';

/** A 1:1 Welcome or commit: afterwards envelopes carry access tokens of a new session or epoch. */
export function changesAccessKeys(opened: Pick<OpenedEnvelope, 'inner' | 'message'>): boolean {
  if (opened.inner.msgType === MSG_TYPE.welcome) return true;
  return opened.inner.msgType === MSG_TYPE.message && opened.message?.contentType === 'commit';
}

/** PROTOCOL.md §6: key 1 derives from key 2, and a new sealed-sender key is signed by key 2. */
export function senderBindingHolds(inner: InnerPayload): boolean {
  if (toHex(deriveUserId(inner.senderIdentityKey)) !== toHex(inner.senderId)) return false;
  if (inner.sealedSenderKey !== undefined) {
    const sig = inner.sealedSenderKeySignature;
    if (!sig || !verifySealedSenderKey(inner.senderIdentityKey, inner.sealedSenderKey, sig)) return false;
  }
  return true;
}

export interface InboxPipelineDeps {
  queue: KeyedSerialQueue;
  /** The envelope checks of inbound-envelope.ts, with this client's keys and caches. */
  check(payload: Uint8Array): Promise<EnvelopeCheck>;
  /** Runs inside the sender's lane; resolves to a drop reason or undefined when handled. */
  receive(opened: OpenedEnvelope, sender: UserIdHex): Promise<DropReason | undefined>;
  dropped(reason: DropReason, topic: string, error?: unknown): void;
  securityDrop(topic: string, inner: InnerPayload): void;
  /** Rethrows the lane's error, counting an overload first. */
  refuseIfOverloaded(e: unknown, topic: string): never;
  /**
   * Replicas only (access-refresh.ts): resolves once the access index was reloaded from the store
   * after this call, for a hint another replica's session or epoch may explain; false when too many
   * envelopes wait already (the caller drops this one).
   */
  reloadAccess?(hint?: string): Promise<boolean>;
}

/**
 * Reloads an envelope with an unknown hint may wait for (each starts after the previous one, at
 * least ACCESS_RELOAD_INTERVAL_MS apart): about three seconds for another replica to commit. One
 * second was too short: a peer sends right after its first contact, and on a loaded machine the
 * replica that took the Welcome committed later than that (issue 13, the replica chaos test lost
 * such messages as 'pow'). Still bounded: reloads are shared by every waiting envelope and spaced
 * by the interval (one listing per interval, however many made-up hints arrive), and at most
 * ACCESS_RELOAD_MAX_WAITING envelopes wait at a time; the rest are dropped at once.
 */
const ACCESS_RELOADS = 12;

export class InboxPipeline {
  private arrivals: Promise<void> = Promise.resolve();
  /** Resolves once every arrival so far has been checked and registered as key-changing or not. */
  private checks: Promise<void> = Promise.resolve();
  /** Resolves once every arrival so far that sets up a session or an epoch has been processed. */
  private keyChanges: Promise<void> = Promise.resolve();

  constructor(private readonly deps: InboxPipelineDeps) {}

  /**
   * The transport runs handlers concurrently; the envelope checks may finish out of order, so each
   * message joins its conversation's lane only after every earlier arrival has joined its own.
   *
   * An access hint that matches no session may name one that an earlier Welcome or commit is still
   * setting up. Such an envelope waits for those earlier key changes only, not for everything that
   * arrived before it: an envelope with a made-up hint costs nothing to send, and must not make
   * every conversation wait on the slowest handler in flight.
   */
  async receive(topic: string, payload: Uint8Array): Promise<void> {
    const d = this.deps;
    const previous = this.arrivals;
    const earlierChecks = this.checks;
    let joined!: () => void;
    let checkedIn!: () => void;
    let completed!: () => void;
    this.arrivals = new Promise<void>((r) => (joined = r));
    this.checks = new Promise<void>((r) => (checkedIn = r));
    const mine = new Promise<void>((r) => (completed = r));
    let settleClaim: ((keep: boolean) => void) | undefined;
    try {
      let checked = await d.check(payload);
      if (checked.ok) settleClaim = checked.value.claim.settle;
      // Registered in arrival order, so a later envelope sees every earlier key change.
      await earlierChecks;
      let keyChangesBefore: Promise<void> | undefined;
      if (!checked.ok && checked.reason === 'pow' && checked.retryAfterEarlier) {
        keyChangesBefore = this.keyChanges;
      } else if (checked.ok && changesAccessKeys(checked.value)) {
        this.keyChanges = Promise.all([this.keyChanges, mine]).then(() => undefined);
      }
      checkedIn();
      if (keyChangesBefore) {
        await keyChangesBefore;
        checked = await d.check(payload);
        // Another replica may still be committing the Welcome or commit this hint belongs to.
        for (
          let i = 0;
          i < ACCESS_RELOADS && !checked.ok && checked.reason === 'pow' && d.reloadAccess;
          i++
        ) {
          if (!(await d.reloadAccess(checked.hint))) break;
          checked = await d.check(payload);
        }
        if (checked.ok) settleClaim = checked.value.claim.settle;
      }
      await previous;
      if (!checked.ok) return d.dropped(checked.reason, topic, checked.error);
      const opened = checked.value;
      if (!senderBindingHolds(opened.inner)) return d.securityDrop(topic, opened.inner);
      const sender = userIdToHex(opened.inner.senderId);
      let lane: Promise<DropReason | undefined>;
      try {
        lane = d.queue.run(sender, () => d.receive(opened, sender));
      } finally {
        joined();
      }
      const reason = await lane.catch((e: unknown) => d.refuseIfOverloaded(e, topic));
      if (reason === 'sender_binding') d.securityDrop(topic, opened.inner);
      else if (reason) d.dropped(reason, topic);
    } catch (e) {
      // No outcome: the message is left unacknowledged and comes back, and must not meet a replay.
      settleClaim?.(false);
      throw e;
    } finally {
      settleClaim?.(true);
      checkedIn();
      joined();
      completed();
    }
  }
}
