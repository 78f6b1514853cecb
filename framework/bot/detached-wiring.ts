/**
 * The runtime's side of detached runs (detached-run.ts) and their open-reply markers
 * (open-replies.ts), kept out of runtime.ts: running one message's chain so that a handler that
 * detaches releases the conversation lane early, and ending at start-up the replies a crash cut
 * short.
 */
import type { Logger } from 'pino';
import { DUTY, type Duties } from '../relay/duties.js';
import { run, type Middleware } from './composer.js';
import { endInterruptedReplies, type PostFn } from './open-replies.js';
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

/** What endInterruptedOnStart() needs of the runtime. */
export interface InterruptedEnds {
  readonly bot: string;
  readonly store: JobSource;
  readonly post: PostFn;
  readonly duties: Duties;
  readonly log: Logger;
  /** Whether the client is connected (undefined: no such notion, go ahead). */
  readonly connected: () => boolean | undefined;
  /** stop() was called: give up waiting. */
  readonly halted: () => boolean;
}

/**
 * Ends the replies a crash cut short (open-replies.ts), once the client is connected. With
 * replicas only the scheduler's owner does it: another replica's marker may belong to a live run.
 */
export async function endInterruptedOnStart(e: InterruptedEnds): Promise<void> {
  while (e.connected() === false && !e.halted()) {
    await new Promise((r) => setTimeout(r, 100).unref());
  }
  if (e.halted() || !e.duties.owns(DUTY.scheduler)) return;
  const ended = await endInterruptedReplies(e.bot, (p) => e.store.listConversationData(p), e.post, e.log);
  if (ended > 0) e.log.info({ ended }, 'ended replies interrupted by a crash');
}
