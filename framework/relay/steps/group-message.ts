/**
 * The front half of a group topic message (PROTOCOL.md §9, §10), as pure functions: the payload's
 * framing and clear header, then, over the loaded group, the duplicate check, the epoch verdict
 * and MLS. What follows depends on the kind (application, proposal, commit, our removal): see
 * group-received.ts. A member that fell behind gets the follow-up 'rejoin' instead of a callback:
 * the shell decides when to ask.
 */
import type { DropReason } from '../drops.js';
import { decodeGroupPayload } from '../envelope.js';
import { exceedsMemberCap, judgeEpoch } from '../group-policy.js';
import * as mls from '../mls/index.js';
import type { StepContext } from './context.js';

export interface GroupPayload {
  message: Uint8Array;
  /** `message` decoded once, here: its clear header routes and judges it, MLS processes it. */
  header: mls.DecodedMessage;
}

/** Size, GroupPayload framing and the MLS clear header: no state needed. */
export function readGroupPayload(payload: Uint8Array, maxBytes: number): GroupPayload | { drop: DropReason } {
  if (payload.length > maxBytes) return { drop: 'oversize' };
  try {
    const message = decodeGroupPayload(payload);
    return { message, header: mls.decodeMessage(message) };
  } catch {
    return { drop: 'group_payload' };
  }
}

export interface GroupLoaded {
  state: mls.GroupSession;
  /** The digest was processed in this group before. */
  processed: boolean;
}

export type GroupMessageStep =
  { drop: DropReason; followUp?: 'rejoin' } | { drop?: undefined; result: mls.ProcessedGroupMessage };

export async function groupMessage(
  ctx: StepContext,
  loaded: GroupLoaded,
  input: GroupPayload,
  limits: { maxMembers: number },
  log: (err: string) => void = () => undefined,
): Promise<GroupMessageStep> {
  if (loaded.processed) return { drop: 'duplicate' };
  const verdict = judgeEpoch(
    input.header,
    mls.epochOf(loaded.state),
    mls.cameFromPreviousEpoch(loaded.state),
  );
  if (verdict === 'gap') return { drop: 'group_epoch_gap', followUp: 'rejoin' };
  if (verdict !== 'process') return { drop: `group_${verdict}` };
  let result: mls.ProcessedGroupMessage;
  try {
    result = await mls.processGroupMessage(ctx.mls, loaded.state, input.header, { now: ctx.clock.now() });
  } catch (e) {
    // Echoed back by a broker that ignores No Local (aedes, at times): a copy of our own message.
    if (e instanceof mls.OwnMessageError) return { drop: 'duplicate' };
    log((e as Error).message);
    return { drop: 'mls' };
  }
  // §9: the member cap holds for every commit; the state stays as it was.
  if (result.kind === 'commit' && exceedsMemberCap(result.state, limits.maxMembers)) {
    return { drop: 'group_too_large' };
  }
  return { result };
}
