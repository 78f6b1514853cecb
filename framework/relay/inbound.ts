/**
 * The inbox half of the receive pipeline (ARCHITECTURE.md "One inbound message", steps 2–4): the
 * envelope checks, arrival order, the sender binding, then the sender's lane. What happens inside
 * the lane (a Welcome, a message, a group invitation) is the caller's `receive`.
 */
import type { UserIdHex } from './brand.js';
import { toHex } from './bytes.js';
import type { InboundVia } from './access-refresh.js';
import type { DropReason } from './drops.js';
import type { InnerPayload } from './envelope.js';
import { deriveUserId, userIdToHex, verifySealedSenderKey } from './identity.js';
import type { EnvelopeCheck, OpenedEnvelope } from './inbound-envelope.js';
import { HintPlaces, RecheckRounds } from './inbox-waits.js';
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

/** Verified sender bindings kept per pipeline: one per peer in a bot's working set and then some. */
const SENDER_BINDINGS_KEPT = 1024;

/**
 * senderBindingHolds with its positive answers kept, bounded, least recently used first out. The
 * check is a pure function of the four fields in the id, so a hit is the answer a recheck would
 * give; failures are not kept (a forged binding costs its sender as much as before, and cannot
 * push verified ones out). Saves a SHA-256 per message, and the Ed25519 verify of a sealed-sender
 * key that arrives again (every Welcome from the same peer carries it).
 */
export class SenderBindings {
  private readonly held = new Set<string>();

  constructor(private readonly limit = SENDER_BINDINGS_KEPT) {}

  holds(inner: InnerPayload): boolean {
    const id = [
      toHex(inner.senderId),
      toHex(inner.senderIdentityKey),
      inner.sealedSenderKey ? toHex(inner.sealedSenderKey) : '',
      inner.sealedSenderKeySignature ? toHex(inner.sealedSenderKeySignature) : '',
    ].join('.');
    if (this.held.delete(id)) {
      this.held.add(id);
      return true;
    }
    if (!senderBindingHolds(inner)) return false;
    this.held.add(id);
    if (this.held.size > this.limit) this.held.delete(this.held.values().next().value!);
    return true;
  }
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
   * envelopes of the connection `via` wait already (the caller drops this one).
   */
  reloadAccess?(hint?: string, via?: InboundVia): Promise<boolean>;
}

/**
 * Reloads an envelope with an unknown hint may wait for (each starts after the previous one, at
 * least ACCESS_RELOAD_INTERVAL_MS apart): about three seconds for another replica to commit. One
 * second was too short: a peer sends right after its first contact, and on a loaded machine the
 * replica that took the Welcome committed later than that (issue 13, the replica chaos test lost
 * such messages as 'pow'). Still bounded: reloads are shared by every waiting envelope and spaced
 * by the interval (one listing per interval, however many made-up hints arrive), and the envelopes
 * waiting at a time are bounded per connection (access-refresh.ts); the rest are dropped at once.
 */
const ACCESS_RELOADS = 12;

export class InboxPipeline {
  private arrivals: Promise<void> = Promise.resolve();
  /** Resolves once every arrival so far has been checked and registered as key-changing or not. */
  private checks: Promise<void> = Promise.resolve();
  /** Resolves once every arrival so far that sets up a session or an epoch has been processed. */
  private keyChanges: Promise<void> = Promise.resolve();
  private seq = 0;
  private readonly places = new HintPlaces();
  private readonly rounds: RecheckRounds;
  private readonly bindings = new SenderBindings();

  constructor(private readonly deps: InboxPipelineDeps) {
    this.rounds = new RecheckRounds((payload) => deps.check(payload));
  }

  /**
   * The transport runs handlers concurrently; the envelope checks may finish out of order, so each
   * message joins its sender's lane only after every earlier arrival has joined its own (or left
   * the arrival chain to wait, below).
   *
   * An access hint that matches no session may name one that an earlier Welcome or commit is still
   * setting up, or (replicas) one another replica set up. Such an envelope waits for those earlier
   * key changes and for access reloads outside the arrival chain, and joins its lane at the back of
   * it once explained (inbox-waits.ts keeps the order its conversation needs): an envelope with a
   * made-up hint costs nothing to send, and must not make every conversation wait with it.
   */
  async receive(topic: string, payload: Uint8Array, via: InboundVia = 'own'): Promise<void> {
    const d = this.deps;
    const seq = this.seq++;
    const previous = this.arrivals;
    const earlierChecks = this.checks;
    let joined!: () => void;
    let checkedIn!: () => void;
    let completed!: () => void;
    this.arrivals = new Promise<void>((r) => (joined = r));
    this.checks = new Promise<void>((r) => (checkedIn = r));
    const mine = new Promise<void>((r) => (completed = r));
    let settleClaim: ((keep: boolean) => void) | undefined;
    let place: ReturnType<HintPlaces['enter']> | undefined;
    try {
      let checked = await d.check(payload);
      if (checked.ok) settleClaim = checked.value.claim.settle;
      // Registered in arrival order, so a later envelope sees every earlier key change.
      await earlierChecks;
      const waits = !checked.ok && checked.reason === 'pow' && checked.retryAfterEarlier === true;
      const keyChangesBefore = waits ? this.keyChanges : undefined;
      if (checked.ok && changesAccessKeys(checked.value)) {
        this.keyChanges = Promise.all([this.keyChanges, mine]).then(() => undefined);
      }
      const hint = hintOf(checked);
      if (hint !== undefined && (waits || this.places.has(hint))) place = this.places.enter(hint);
      else if (waits) place = { behind: undefined, leave: () => undefined };
      checkedIn();
      if (!place) {
        await previous;
        return await this.join(checked, topic, joined);
      }
      // Out of the arrival chain: nobody behind this envelope waits for its wait.
      joined();
      if (keyChangesBefore) {
        checked = await this.waitForKeys(seq, payload, keyChangesBefore, checked, via);
        if (checked.ok) settleClaim = checked.value.claim.settle;
      }
      if (place.behind) await place.behind;
      // Back into the arrival chain, at its end, as if it arrived now.
      const before = this.arrivals;
      let rejoined!: () => void;
      this.arrivals = new Promise<void>((r) => (rejoined = r));
      try {
        await before;
        await this.join(checked, topic, rejoined, place.leave);
      } finally {
        rejoined();
      }
    } catch (e) {
      // No outcome: the message is left unacknowledged and comes back, and must not meet a replay.
      settleClaim?.(false);
      throw e;
    } finally {
      settleClaim?.(true);
      checkedIn();
      joined();
      place?.leave();
      completed();
    }
  }

  /**
   * Waits for the earlier key changes, then (replicas) for reloads of the access index, checking
   * again after each in a round with the other waiting envelopes.
   */
  private async waitForKeys(
    seq: number,
    payload: Uint8Array,
    keyChangesBefore: Promise<void>,
    first: EnvelopeCheck,
    via: InboundVia,
  ): Promise<EnvelopeCheck> {
    const d = this.deps;
    await keyChangesBefore;
    let checked = await this.rounds.recheck(seq, payload);
    // Another replica may still be committing the Welcome or commit this hint belongs to.
    for (let i = 0; i < ACCESS_RELOADS && !checked.ok && checked.reason === 'pow' && d.reloadAccess; i++) {
      if (!(await d.reloadAccess(checked.hint ?? hintOf(first), via))) break;
      checked = await this.rounds.recheck(seq, payload);
    }
    return checked;
  }

  /** Into the sender's lane (or dropped); `joined` (and `leave`) once it has its place there. */
  private async join(
    checked: EnvelopeCheck,
    topic: string,
    joined: () => void,
    leave?: () => void,
  ): Promise<void> {
    const d = this.deps;
    if (!checked.ok) return d.dropped(checked.reason, topic, checked.error);
    const opened = checked.value;
    if (!this.bindings.holds(opened.inner)) return d.securityDrop(topic, opened.inner);
    const sender = userIdToHex(opened.inner.senderId);
    let lane: Promise<DropReason | undefined>;
    try {
      lane = d.queue.run(sender, () => d.receive(opened, sender));
    } finally {
      joined();
      leave?.();
    }
    const reason = await lane.catch((e: unknown) => d.refuseIfOverloaded(e, topic));
    if (reason === 'sender_binding') d.securityDrop(topic, opened.inner);
    else if (reason) d.dropped(reason, topic);
  }
}

/** The envelope's access hint (hex), whether it verified or not. */
function hintOf(checked: EnvelopeCheck): string | undefined {
  if (!checked.ok) return checked.hint;
  const access = checked.value.envelope.access;
  return access ? toHex(access.hint) : undefined;
}
