/**
 * The runtime's side of detached runs (detached-run.ts) and their open-reply markers
 * (open-replies.ts), kept out of runtime.ts: running one message's chain so that a handler that
 * detaches releases the conversation lane early, and ending at start-up the replies a crash cut
 * short.
 */
import type { Logger } from 'pino';
import { DeadReplicas } from '../relay/dead-replicas.js';
import { DUTY, type Duties } from '../relay/duties.js';
import { DEFAULT_LEASE_TTL_MS } from '../relay/lease-keeper.js';
import { run, type Middleware } from './composer.js';
import {
  endInterruptedReplies,
  isLeftover,
  type MarkerClaim,
  type MarkerOwner,
  type PostFn,
} from './open-replies.js';
import type { AttachReplica } from './runtime-options.js';
import type { JobSource } from './scheduler.js';
import type { UpdateContext } from './update-context.js';

/**
 * Runs `ctx` through `chain`. A handler that starts typing or streaming releases the lane early
 * (detached-run.ts): this resolves then, the client commits, and the rest of the handler runs in
 * the background under `track` (the runtime's stop() waits for it), its run closed at the end.
 */
export async function runDetachable(
  chain: Middleware<UpdateContext>,
  ctx: UpdateContext,
  track: (work: Promise<void>) => void,
  log: Logger,
): Promise<void> {
  const detached = ctx.run.detached;
  const running = run(chain, ctx);
  const first = await Promise.race([
    running.then(() => 'done' as const),
    detached?.released.then(() => 'released' as const),
  ]);
  if (first === 'released' && detached) {
    track(
      running.finally(() =>
        detached.close().catch((err: unknown) => log.error({ err }, 'could not close a detached reply')),
      ),
    );
  } else {
    await detached?.close();
  }
}

/** What endInterruptedOnStart() and InterruptedSweep need of the runtime. */
export interface InterruptedEnds {
  readonly bot: string;
  readonly store: JobSource;
  readonly post: PostFn;
  readonly duties: Duties;
  readonly log: Logger;
  /** Who this process's markers name. */
  readonly self: MarkerOwner;
  /** With replicas: the registry that tells which replicas are dead. */
  readonly replica: AttachReplica | undefined;
  /** Whether the client is connected (undefined: no such notion, go ahead). */
  readonly connected: () => boolean | undefined;
  /** stop() was called: give up waiting. */
  readonly halted: () => boolean;
}

/**
 * One pass over the markers: ends this process's leftovers from an earlier start and, as the
 * scheduler's owner, those of dead replicas (or, without a registry, those naming no replica).
 */
async function sweep(e: InterruptedEnds): Promise<number> {
  const mayEndOthers = e.duties.owns(DUTY.scheduler);
  let isDead: (replica: string) => boolean = () => false;
  if (mayEndOthers && e.replica) {
    const { registry, replicaId, staleAfterMs = DEFAULT_LEASE_TTL_MS } = e.replica;
    ({ isDead } = await new DeadReplicas({ registry, self: replicaId, staleAfterMs }).read());
  }
  return endInterruptedReplies(
    e.bot,
    (p) => e.store.listConversationData(p),
    e.post,
    e.log,
    (m) => isLeftover(m, e.self, mayEndOthers, isDead),
    e.replica && markerClaim(e.replica),
  );
}

/** Longer than ending one marker takes (a send with its proof of work): the claim outlives the end. */
const MARKER_CLAIM_TTL_MS = 60_000;

/**
 * The claim on ending a marker (open-replies.ts, MarkerClaim): a lease `open-reply/<marker key>`
 * of this replica in the registry's store, released once the end committed. Without leases in
 * the registry (a stand-in that only lists replicas) there is no claim.
 */
function markerClaim(replica: AttachReplica): MarkerClaim | undefined {
  const { registry, replicaId } = replica;
  const { acquireLease, releaseLease } = registry;
  if (!acquireLease || !releaseLease) return undefined;
  return async (key) => {
    const name = `open-reply/${key}`;
    const held = await acquireLease.call(registry, name, replicaId, MARKER_CLAIM_TTL_MS);
    if (!held) return undefined;
    return async () => void (await releaseLease.call(registry, name, replicaId));
  };
}

/**
 * Ends the replies a crash cut short (open-replies.ts), once the client is connected: this
 * process's own from before it started, and, as the scheduler's owner, dead replicas'. A live
 * replica's marker belongs to a run still going and stays.
 */
export async function endInterruptedOnStart(e: InterruptedEnds): Promise<void> {
  while (e.connected() === false && !e.halted()) {
    await new Promise((r) => setTimeout(r, 100).unref());
  }
  if (e.halted()) return;
  const ended = await sweep(e);
  if (ended > 0) e.log.info({ ended }, 'ended replies interrupted by a crash');
}

/**
 * With replicas, a replica may die while the others run: every checkMs the scheduler's owner ends
 * the markers of replicas that died since (a reading of the registry only when it owns the duty).
 */
export class InterruptedSweep {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;
  private queued = false;

  constructor(private readonly e: InterruptedEnds & { replica: AttachReplica }) {}

  /** Starts the timer; its passes wait for `first` (the start-up pass), so none overlap it. */
  start(first: Promise<void>): void {
    this.running = first.catch(() => undefined);
    this.timer = setInterval(() => {
      if (this.stopped || this.queued || !this.e.duties.owns(DUTY.scheduler)) return;
      if (this.e.connected() === false) return;
      // One pass waiting at a time: a slow store does not pile them up.
      this.queued = true;
      this.running = this.running.then(() => {
        this.queued = false;
        return sweep(this.e).then(
          (ended) => void (ended > 0 && this.e.log.info({ ended }, 'ended the replies of dead replicas')),
          (err: unknown) => this.e.log.warn({ err }, 'could not look for dead replicas’ replies'),
        );
      });
    }, this.e.replica.checkMs ?? DEFAULT_CHECK_MS);
    this.timer.unref();
  }

  /** Stops the timer and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }
}

/** InterruptedSweep's default interval. */
const DEFAULT_CHECK_MS = 5_000;
