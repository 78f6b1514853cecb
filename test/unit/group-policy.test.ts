/**
 * The §9 decisions in framework/relay/group-policy.ts: epoch judgement, who may commit, what a
 * commit carries, key-refresh schedules and membership intents.
 */
import {
  createMlsContext,
  generateKeyPackage,
  proposeAdd,
  proposeRemove,
  proposeUpdate,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import { newGroupMeta } from '../../framework/relay/group-meta.js';
import {
  commitPlan,
  committerRefreshDue,
  deferredAfter,
  exceedsMemberCap,
  MAX_ADDS_PER_COMMIT,
  intentDone,
  judgeEpoch,
  mayCommit,
  memberRefreshDue,
  withIntent,
} from '../../framework/relay/group-policy.js';
import type { UserId, UserIdHex } from '../../framework/relay/brand.js';
import { userIdToHex } from '../../framework/relay/identity.js';

const toHexId = (u: Uint8Array): UserIdHex => userIdToHex(u as UserId);
import { buildGroup, deliver, makeIdentity, nowSeconds } from './mls-helpers.js';

let ctx: MlsContext;
beforeAll(async () => {
  ctx = await createMlsContext();
});

test('judgeEpoch: above ours is a gap, our epoch and past application messages are processed', () => {
  expect(judgeEpoch({ epoch: 6n, contentType: 'application' }, 5n, true)).toBe('gap');
  expect(judgeEpoch({ epoch: 6n, contentType: 'commit' }, 5n, true)).toBe('gap');
  expect(judgeEpoch({ epoch: 5n, contentType: 'commit' }, 5n, true)).toBe('process');
  expect(judgeEpoch({ epoch: 2n, contentType: 'application' }, 5n, true)).toBe('process');
  expect(judgeEpoch({ epoch: 4n, contentType: 'commit' }, 5n, true)).toBe('fork');
  expect(judgeEpoch({ epoch: 4n, contentType: 'proposal' }, 5n, true)).toBe('stale');
  expect(judgeEpoch({ epoch: 3n, contentType: 'commit' }, 5n, true)).toBe('stale');
  // Joined at epoch 5 through a Welcome: the commit that left epoch 4 is the one we joined through.
  expect(judgeEpoch({ epoch: 4n, contentType: 'commit' }, 5n, false)).toBe('stale');
});

test('key refresh: 1,000 messages or 7 days, per role', async () => {
  const now = 1_000_000;
  const meta = newGroupMeta(now);
  expect(committerRefreshDue(meta, now, 1000)).toBe(false);
  expect(committerRefreshDue({ ...meta, messagesSinceCommit: 1000 }, now, 1000)).toBe(true);
  expect(committerRefreshDue(meta, now + 7 * 86_400, 1000)).toBe(true);
  const [committer, member] = await buildGroup(ctx, 2);
  expect(memberRefreshDue(committer!.state, { ...meta, ownMessagesSinceUpdate: 5000 }, now, 1000)).toBe(
    false,
  );
  expect(memberRefreshDue(member!.state, { ...meta, ownMessagesSinceUpdate: 999 }, now, 1000)).toBe(false);
  expect(memberRefreshDue(member!.state, { ...meta, ownMessagesSinceUpdate: 1000 }, now, 1000)).toBe(true);
  const proposed = await proposeUpdate(ctx, member!.state);
  // One Update in flight is enough.
  expect(memberRefreshDue(proposed.state, { ...meta, ownMessagesSinceUpdate: 1000 }, now, 1000)).toBe(false);
});

test('intents: a wanted change is done when the member list says so; duplicates are not recorded', () => {
  const a = 'a'.repeat(32) as UserIdHex;
  const self = 'f'.repeat(32) as UserIdHex;
  expect(intentDone({ kind: 'add', userId: a }, new Set([a]), self)).toBe(true);
  expect(intentDone({ kind: 'add', userId: a }, new Set(), self)).toBe(false);
  expect(intentDone({ kind: 'remove', userId: a }, new Set([a]), self)).toBe(false);
  expect(intentDone({ kind: 'leave' }, new Set([self]), self)).toBe(false);
  expect(intentDone({ kind: 'leave' }, new Set([a]), self)).toBe(true);
  const once = withIntent([], { kind: 'add', userId: a });
  expect(withIntent(once, { kind: 'add', userId: a })).toHaveLength(1);
  expect(withIntent(once, { kind: 'remove', userId: a })).toHaveLength(2);
  expect(withIntent(withIntent([], { kind: 'leave' }), { kind: 'leave' })).toHaveLength(1);
});

describe('with proposals pending at the committer', () => {
  test('Adds and Removes go by value, Updates by reference unless the epoch added members', async () => {
    const members = await buildGroup(ctx, 4);
    const [committer, a, b, c] = members as [
      (typeof members)[0],
      (typeof members)[0],
      (typeof members)[0],
      (typeof members)[0],
    ];
    const invitee = makeIdentity();
    const kp = await generateKeyPackage(ctx, invitee, nowSeconds());
    const add = await proposeAdd(ctx, a.state, kp.keyPackage);
    a.state = add.state;
    await deliver(ctx, members, a, add.message);
    const remove = await proposeRemove(ctx, b.state, 3);
    b.state = remove.state;
    await deliver(ctx, members, b, remove.message);
    const update = await proposeUpdate(ctx, c.state);
    c.state = update.state;
    await deliver(ctx, members, c, update.message);

    const fresh = new Uint8Array([1, 2, 3]);
    const plan = commitPlan(committer.state, { epochAddedMembers: false }, () => fresh);
    expect(plan.adds).toEqual([fresh]);
    expect(plan.removes).toEqual([3]);
    expect(plan.exclude).toHaveLength(2); // the Add and the Remove; the Update stays by reference
    const afterAdds = commitPlan(committer.state, { epochAddedMembers: true }, () => undefined);
    expect(afterAdds.adds).toEqual([]); // no valid bundle: the Add is left out
    expect(afterAdds.exclude).toHaveLength(3);
    expect(mayCommit(committer.state)).toBe(true);
    expect(mayCommit(a.state)).toBe(false);
  });

  test('the committer that asked to leave does not commit; the next-lowest member does', async () => {
    const members = await buildGroup(ctx, 3);
    const [committer, next, last] = members as [
      (typeof members)[0],
      (typeof members)[0],
      (typeof members)[0],
    ];
    const leave = await proposeRemove(ctx, committer.state, 0);
    committer.state = leave.state;
    await deliver(ctx, members, committer, leave.message);
    expect(mayCommit(committer.state)).toBe(false);
    expect(mayCommit(next.state)).toBe(true);
    expect(mayCommit(last.state)).toBe(false);
    // The committer's own Remove stays by reference: the hand-over commit is recognised by it.
    expect(commitPlan(next.state, {}, () => undefined).exclude).toEqual([]);
  });
});

describe('Adds per commit and the member cap (§9)', () => {
  const id = (i: number) => i.toString(16).padStart(32, '0') as UserIdHex;
  const wanted = (n: number, from = 1) =>
    Array.from({ length: n }, (_, i) => ({ userId: id(from + i), keyPackage: Uint8Array.of(from + i) }));

  test('at most 10 Adds in one commit; the rest are left for the next epoch, in order', async () => {
    const [committer] = await buildGroup(ctx, 2);
    const plan = commitPlan(committer!.state, {}, () => undefined, { adds: wanted(12) });
    expect(MAX_ADDS_PER_COMMIT).toBe(10);
    expect(plan.adds).toEqual(wanted(10).map((w) => w.keyPackage));
    expect(plan.later).toEqual([id(11), id(12)]);
    expect(deferredAfter(plan, [id(12), id(40)])).toEqual([id(12), id(40), id(11)]);
  });

  test('deferred invitees come after direct ones; without a KeyPackage they are left out', async () => {
    const [committer] = await buildGroup(ctx, 2);
    const kps = new Map([[id(30), Uint8Array.of(30)]]);
    const plan = commitPlan(committer!.state, {}, (u) => kps.get(toHexId(u)), {
      adds: wanted(9),
      deferred: [id(31), id(30), id(1)],
    });
    // id(31) has no bundle: left out; id(1) is already asked for directly: counted once.
    expect(plan.adds).toEqual([...wanted(9).map((w) => w.keyPackage), Uint8Array.of(30)]);
    expect(plan.later).toEqual([]);
  });

  test('Adds beyond the member cap are left out, current members are never added again', async () => {
    const members = await buildGroup(ctx, 3);
    const self = toHexId(members[1]!.id.userId);
    const plan = commitPlan(members[0]!.state, {}, () => undefined, {
      adds: [{ userId: self, keyPackage: Uint8Array.of(99) }, ...wanted(5)],
      maxMembers: 5,
    });
    expect(plan.adds).toEqual(wanted(2).map((w) => w.keyPackage));
    expect(plan.later).toEqual([]);
    // A member being removed in the same commit (a rejoin) frees its seat and may be added back.
    const rejoin = commitPlan(members[0]!.state, {}, () => undefined, {
      adds: [{ userId: self, keyPackage: Uint8Array.of(99) }],
      removes: [1],
      maxMembers: 3,
    });
    expect(rejoin.adds).toEqual([Uint8Array.of(99)]);
    expect(rejoin.removes).toEqual([1]);
  });

  test('exceedsMemberCap: a state with more members than the cap', async () => {
    const [committer] = await buildGroup(ctx, 3);
    expect(exceedsMemberCap(committer!.state, 3)).toBe(false);
    expect(exceedsMemberCap(committer!.state, 2)).toBe(true);
  });
});
