/**
 * A group Welcome once admitted (PROTOCOL.md §6, §9): joining a group we are not in, or, for one we
 * are in, only the answer to our own rejoin request. Returns the group to write, the events and
 * the fresh bundle to publish; the shell subscribes to the topic before it commits.
 */
import { groupIdHexOf, type GroupId } from '../brand.js';
import { toHex } from '../bytes.js';
import type { DropReason } from '../drops.js';
import type { InnerPayload } from '../envelope.js';
import { newGroupMeta, parseGroupMeta, serializeGroupMeta } from '../group-meta.js';
import { replayEntry } from '../inbound-envelope.js';
import * as mls from '../mls/index.js';
import { groupStateColumns } from '../group-records.js';
import { welcomeSenderPeer } from '../welcome-admission.js';
import { judgeGroupWelcome } from '../rejoin-request.js';
import type { GroupConversationRecord, GroupRecord, PeerRecord } from '../store.js';
import { topicIdForGroup } from '../topics.js';
import { hexId, type GroupWrite } from './group-write.js';
import type { DirectWelcomeInput } from './direct-welcome.js';

/** §6: the GroupInfo signer (the committer, checked by the engine) is the envelope's sender. */
export function groupWelcomeBinding(
  joined: Pick<mls.JoinedSession, 'groupInfoSignerKey'>,
  inner: Pick<InnerPayload, 'senderIdentityKey'>,
): DropReason | undefined {
  return toHex(joined.groupInfoSignerKey) === toHex(inner.senderIdentityKey) ? undefined : 'sender_binding';
}

export interface GroupWelcomeLoaded {
  /** Our record of the Welcome's group, if we are in it. */
  existing: GroupRecord | undefined;
  /** What we knew of the sender before. */
  known: PeerRecord | undefined;
}

/** The same inputs as a 1:1 Welcome: what the one Welcome preamble (welcome-admission.ts) hands on. */
export type GroupWelcomeInput = DirectWelcomeInput;

export type GroupWelcomeStep =
  { drop: DropReason } | { drop?: undefined; groupId: string; topicId: string; write: GroupWrite };

export function groupWelcome(loaded: GroupWelcomeLoaded, input: GroupWelcomeInput): GroupWelcomeStep {
  const { joined, opened, sender, now } = input;
  const { inner } = opened;
  const groupIdBytes = mls.groupIdOf(joined.state);
  const groupId = groupIdHexOf(groupIdBytes);
  const topicId = topicIdForGroup(groupIdBytes as GroupId);
  const { existing } = loaded;
  const existingMeta = existing && parseGroupMeta(existing.meta, now);
  // §9: for a group we are in, only the answer to our own rejoin request (which it clears).
  const verdict = judgeGroupWelcome(
    existingMeta,
    { signerKey: joined.groupInfoSignerKey, consumedRef: joined.consumedRef },
    now,
  );
  if (verdict === 'duplicate') return { drop: 'group_duplicate' };
  const rejoin = verdict === 'rejoin';
  const name = inner.groupName ?? existingMeta?.name;
  const meta = newGroupMeta(now, {
    invitedBy: sender,
    epochAddedMembers: true,
    ...(name !== undefined ? { name } : {}),
    // Kept across the re-add: a forged future-epoch header must not buy another one at once.
    ...(rejoin ? { rejoinRequestedAt: existingMeta!.rejoinRequestedAt } : {}),
  });
  const peer = welcomeSenderPeer(loaded.known, sender, inner.senderIdentityKey, input.sealKey);
  const record: GroupConversationRecord = {
    kind: 'group',
    groupId,
    topicId,
    ...groupStateColumns(joined.state),
    epoch: mls.epochOf(joined.state),
    meta: serializeGroupMeta(meta),
    updatedAt: now,
    version: existing?.version ?? 0,
  };
  return {
    groupId,
    topicId,
    write: {
      commit: {
        conversations: [record],
        peers: [peer],
        envelope: replayEntry(opened),
        welcome: { digest: input.digest, at: now },
        consumedKeyPackage: { ref: toHex(joined.consumedRef), at: now },
      },
      decoded: joined.state,
      consumed: [],
      events: [
        rejoin
          ? { kind: 'rejoined', groupId, topicId, epoch: record.epoch }
          : {
              kind: 'joined',
              groupId,
              topicId,
              invitedBy: sender,
              members: joined.members.map((m) => hexId(m.userId)),
            },
      ],
      // §9: subscribe to the topic first (the shell does, before committing), then a fresh bundle.
      followUps: [{ kind: 'republish' }],
      next: { record, state: joined.state, meta },
    },
  };
}
