// Group steps we start (steps/group-create.ts, group-change.ts, group-send.ts, group-commit.ts) on
// real MLS groups and real sealing, without a broker or a store.
import { toHex } from '../../framework/relay/bytes.js';
import { decodeContent } from '../../framework/relay/content.js';
import { ArgumentError } from '../../framework/relay/errors.js';
import type { Loaded } from '../../framework/relay/group-records.js';
import * as mls from '../../framework/relay/mls/index.js';
import {
  groupAdd,
  groupLeave,
  groupRefreshKeys,
  groupRemove,
  groupReplaceCommitter,
  newMembers,
  STALE_PROPOSAL_SECONDS,
} from '../../framework/relay/steps/group-change.js';
import { commitInvitees, groupCommitPending } from '../../framework/relay/steps/group-commit.js';
import { groupCreate, groupInvitees } from '../../framework/relay/steps/group-create.js';
import { groupSend, refreshBeforeGroupSend } from '../../framework/relay/steps/group-send.js';
import { joinRow, member, miner, NOW, reload, topicMessage, type Member } from '../support/group-steps.js';

let alice: Member;
let bob: Member;
let carol: Member;
/** Alice's group with Bob, and Bob's view of it. */
let aliceLoaded: Loaded;
let bobState: mls.GroupSession;

beforeAll(async () => {
  [alice, bob, carol] = await Promise.all([member(), member(), member()]);
  const created = await groupCreate(alice.ctx, [bob.bundle], 'team');
  aliceLoaded = created.write.next!;
  const welcome = created.write.commit.outbox![0]!;
  bobState = (await joinRow(bob, welcome)).joined.state;
});

afterAll(() => miner.close());

describe('groupCreate', () => {
  it('creates the group with its invitees added, one sealed Welcome each, and the created event', async () => {
    const created = await groupCreate(alice.ctx, [bob.bundle, carol.bundle], 'x');
    const { write } = created;
    expect(write.commit.conversations).toHaveLength(1);
    expect(write.commit.conversations![0]!).toMatchObject({ kind: 'group', groupId: created.groupId });
    expect(write.commit.peers!.map((p) => p.userId).sort()).toEqual([bob.hex, carol.hex].sort());
    expect(write.commit.outbox).toHaveLength(2);
    const joined = await joinRow(carol, write.commit.outbox![1]!);
    expect(joined.opened.inner.groupName).toBe('x');
    expect(toHex(mls.groupIdOf(joined.joined.state))).toBe(created.groupId);
    expect(write.events).toEqual([
      {
        kind: 'created',
        groupId: created.groupId,
        topicId: created.topicId,
        members: [alice.hex, bob.hex, carol.hex],
      },
    ]);
    expect(write.consumed).toHaveLength(2);
  });

  it('refuses more members than the cap and an over-long name before any work', async () => {
    const small = await member({ maxMembers: 2 });
    expect(() => groupInvitees(small.ctx, [bob.hex, carol.hex], undefined)).toThrow(ArgumentError);
    expect(() => groupInvitees(alice.ctx, [bob.hex], 'n'.repeat(1000))).toThrow(ArgumentError);
    expect(groupInvitees(alice.ctx, [bob.hex, bob.hex, alice.hex], undefined)).toEqual([bob.hex]);
  });
});

describe('groupAdd', () => {
  it('the committer commits the Add at once: commit row awaiting its PUBACK, Welcome depending on it', async () => {
    const write = await groupAdd(alice.ctx, reload(aliceLoaded), [carol.bundle]);
    const [commitRow, welcomeRow] = write.commit.outbox!;
    expect(commitRow!.awaitAck).toBe(true);
    expect(welcomeRow!.dependsOn).toBe(commitRow!.id);
    expect(write.events).toEqual([
      {
        kind: 'members',
        groupId: aliceLoaded.record.groupId,
        added: [carol.hex],
        removed: [],
        epoch: mls.epochOf(aliceLoaded.state) + 1n,
      },
    ]);
    const atBob = await mls.processGroupMessage(bob.ctx.mls, bobState, topicMessage(commitRow!));
    expect(atBob.kind).toBe('commit');
  });

  it('a member proposes the Add and records the intent', async () => {
    const bobLoaded: Loaded = { ...reload(aliceLoaded), state: bobState };
    const write = await groupAdd(bob.ctx, bobLoaded, [carol.bundle]);
    expect(write.commit.outbox).toHaveLength(1);
    expect(write.next!.meta.intents).toEqual([{ kind: 'add', userId: carol.hex }]);
    expect(write.next!.meta.pendingSince).toBe(NOW);
    expect(write.events).toEqual([]);
    const atAlice = await mls.processGroupMessage(
      alice.ctx.mls,
      aliceLoaded.state,
      topicMessage(write.commit.outbox![0]!),
    );
    expect(atAlice.kind).toBe('proposal');
  });

  it('newMembers leaves out members and refuses to grow past the cap', async () => {
    expect(newMembers(alice.ctx, aliceLoaded.state, [bob.hex, carol.hex])).toEqual([carol.hex]);
    const small = await member({ maxMembers: 2 });
    expect(() => newMembers(small.ctx, aliceLoaded.state, [carol.hex])).toThrow(ArgumentError);
  });
});

describe('groupRemove and groupLeave', () => {
  it('the committer commits a Remove; nobody to remove is no write', async () => {
    const write = await groupRemove(alice.ctx, reload(aliceLoaded), [bob.hex]);
    expect(write!.events).toEqual([
      {
        kind: 'members',
        groupId: aliceLoaded.record.groupId,
        added: [],
        removed: [bob.hex],
        epoch: mls.epochOf(aliceLoaded.state) + 1n,
      },
    ]);
    expect(await groupRemove(alice.ctx, reload(aliceLoaded), [carol.hex])).toBeUndefined();
  });

  it('a member leaving proposes its own Remove; the last member leaves at once', async () => {
    const bobLoaded: Loaded = { ...reload(aliceLoaded), state: bobState };
    const write = await groupLeave(bob.ctx, bobLoaded);
    expect(write.next!.meta.intents).toEqual([{ kind: 'leave' }]);
    const atAlice = await mls.processGroupMessage(
      alice.ctx.mls,
      aliceLoaded.state,
      topicMessage(write.commit.outbox![0]!),
    );
    expect(atAlice.kind).toBe('proposal');
    const alone = (await groupCreate(carol.ctx, [], undefined)).write.next!;
    const left = await groupLeave(carol.ctx, alone);
    expect(left.commit).toEqual({ deleteConversations: [alone.record.groupId] });
    expect(left.followUps).toEqual([
      { kind: 'forget', groupId: alone.record.groupId, topicId: alone.record.topicId, reason: 'left' },
    ]);
  });
});

describe('key refresh and the stale committer', () => {
  it('the committer refreshes with a commit, a member with one Update at a time', async () => {
    const committed = await groupRefreshKeys(alice.ctx, reload(aliceLoaded));
    expect(committed!.commit.outbox![0]!.awaitAck).toBe(true);
    const bobLoaded: Loaded = { ...reload(aliceLoaded), state: bobState };
    const proposed = await groupRefreshKeys(bob.ctx, bobLoaded);
    expect(proposed!.next!.meta.ownMessagesSinceUpdate).toBe(0);
    expect(await groupRefreshKeys(bob.ctx, proposed!.next!)).toBeUndefined();
  });

  it("a member proposes the committer's Remove only after proposals waited 7 days", async () => {
    const bobLoaded: Loaded = { ...reload(aliceLoaded), state: bobState };
    expect(await groupReplaceCommitter(bob.ctx, bobLoaded)).toBeUndefined();
    bobLoaded.meta.pendingSince = NOW - STALE_PROPOSAL_SECONDS;
    const write = await groupReplaceCommitter(bob.ctx, bobLoaded);
    expect(write!.next!.meta.pendingSince).toBe(NOW);
    const atAlice = await mls.processGroupMessage(
      alice.ctx.mls,
      aliceLoaded.state,
      topicMessage(write!.commit.outbox![0]!),
    );
    expect(atAlice.kind).toBe('proposal');
    expect(await groupReplaceCommitter(alice.ctx, reload(aliceLoaded))).toBeUndefined();
  });
});

describe('groupSend', () => {
  it('posts padded content with its data and counts it; the committer schedules a due refresh', async () => {
    const data = [{ conversationId: 'c', json: '{}' }];
    const write = await groupSend(alice.ctx, reload(aliceLoaded), { content: 'hi', id: 'm1' }, data);
    expect(write.commit.conversationData).toEqual(data);
    expect(write.next!.meta.messagesSinceCommit).toBe(1);
    expect(write.followUps).toEqual([]);
    const atBob = await mls.processGroupMessage(
      bob.ctx.mls,
      bobState,
      topicMessage(write.commit.outbox![0]!),
    );
    expect(atBob.kind === 'application' && decodeContent(atBob.plaintext!).content).toBe('hi');
    const every1 = { ...alice.ctx, updateEveryMessages: 1 };
    const due = await groupSend(every1, reload(aliceLoaded), { content: 'x', id: 'm2' }, []);
    expect(due.followUps).toEqual([{ kind: 'commit', groupId: aliceLoaded.record.groupId }]);
  });

  it('a member is due a refresh before posting once it sent enough', () => {
    const bobLoaded: Loaded = { ...reload(aliceLoaded), state: bobState };
    expect(refreshBeforeGroupSend(bob.ctx, bobLoaded)).toBe(false);
    bobLoaded.meta.ownMessagesSinceUpdate = 5;
    expect(refreshBeforeGroupSend({ ...bob.ctx, updateEveryMessages: 5 }, bobLoaded)).toBe(true);
  });
});

describe('groupCommitPending', () => {
  it("commits a member's proposed Add with the invitee's Welcome", async () => {
    const bobLoaded: Loaded = { ...reload(aliceLoaded), state: bobState };
    const proposed = await groupAdd(bob.ctx, bobLoaded, [carol.bundle]);
    const atAlice = await mls.processGroupMessage(
      alice.ctx.mls,
      aliceLoaded.state,
      topicMessage(proposed.commit.outbox![0]!),
    );
    const pending: Loaded = { ...reload(aliceLoaded), state: atAlice.state };
    expect(commitInvitees(pending)).toEqual([carol.hex]);
    const step = await groupCommitPending(alice.ctx, pending, new Map([[carol.hex, carol.bundle]]));
    expect(step.write!.events[0]).toMatchObject({ kind: 'members', added: [carol.hex] });
    const joined = await joinRow(carol, step.write!.commit.outbox![1]!);
    expect(joined.joined.members).toHaveLength(3);
  });

  it('has nothing to commit without proposals, deferred invitees or a due refresh', async () => {
    expect(await groupCommitPending(alice.ctx, reload(aliceLoaded), new Map())).toEqual({});
  });
});
