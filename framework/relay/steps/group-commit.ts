/**
 * The committer's batched commit (PROTOCOL.md §9): every pending proposal, the invitees an earlier
 * commit deferred, and the key refresh when due. The invitees' bundles (sealed-sender key, PoW
 * bits) are fetched by the shell before the group's lane is entered.
 */
import type { UserIdHex } from '../brand.js';
import { committerRefreshDue, mayCommit, MAX_WELCOME_POW_BITS } from '../group-policy.js';
import type { Loaded } from '../group-records.js';
import type { FetchedPeerBundle } from '../group-types.js';
import * as mls from '../mls/index.js';
import {
  hexId,
  ourCommit,
  planCommit,
  unique,
  type GroupStepContext,
  type GroupWrite,
} from './group-write.js';

/** Whose bundles the next commit needs: the invitees of pending Adds and the deferred ones. */
export function commitInvitees(loaded: Loaded): UserIdHex[] {
  return unique([
    ...mls
      .pendingProposals(loaded.state)
      .flatMap((p) => (p.kind === 'add' && p.add ? [hexId(p.add.userId)] : [])),
    ...(loaded.meta.deferredAdds ?? []),
  ]);
}

/** §9: the committer mines a group Welcome only up to 24 bits; an invitee demanding more is left out. */
export function usableForWelcome(bundle: FetchedPeerBundle): boolean {
  return bundle.powBits <= MAX_WELCOME_POW_BITS;
}

export interface CommitPendingStep {
  write?: GroupWrite;
  /** Why the proposal set was discarded, for the debug log. */
  discarded?: string;
}

/** Nothing to commit (or no longer ours to commit): no write. */
export async function groupCommitPending(
  ctx: GroupStepContext,
  loaded: Loaded,
  bundles: ReadonlyMap<string, FetchedPeerBundle>,
): Promise<CommitPendingStep> {
  const { state, meta } = loaded;
  if (!mayCommit(state)) return {};
  const pending = mls.pendingProposals(state);
  const now = ctx.clock.now();
  const deferred = meta.deferredAdds ?? [];
  const refreshDue = mls.isCommitter(state) && committerRefreshDue(meta, now, ctx.updateEveryMessages);
  if (pending.length === 0 && deferred.length === 0 && !refreshDue) return {};
  // Deferred invitees are all looked at here: those without a usable bundle are left out.
  meta.deferredAdds = [];
  const plan = planCommit(ctx, state, meta, (id) => bundles.get(hexId(id))?.keyPackage, { deferred });
  const peers = [...bundles.values()].map((b) => b.record);
  let commit: mls.GroupCommit;
  try {
    commit = await mls.commitGroup(ctx.mls, state, plan);
  } catch (e) {
    meta.deferredAdds = [];
    // §9: a set the committer cannot commit is discarded; proposers propose again.
    const discarded = (e as Error).message;
    if (!mls.isCommitter(state)) return { discarded };
    // A leave request of ours survives: it is re-proposed from meta.intents.
    commit = await mls.commitGroup(ctx.mls, state, { exclude: pending.map((p) => p.ref) });
    return { write: await ourCommit(ctx, loaded, commit, peers), discarded };
  }
  return { write: await ourCommit(ctx, loaded, commit, peers) };
}
