// Group steps for what arrives (steps/group-received.ts, group-welcome.ts, group-rejoin.ts,
// group-intents.ts) on real MLS groups and real sealing, without a broker or a store.
import type { UnixSeconds } from '../../framework/relay/brand.js';
import { toHex } from '../../framework/relay/bytes.js';
import type { Loaded } from '../../framework/relay/group-records.js';
import { GroupChanges } from '../../framework/relay/handler.js';
import * as mls from '../../framework/relay/mls/index.js';
import { newRejoinRequest } from '../../framework/relay/rejoin-request.js';
import { groupAdd, groupLeave } from '../../framework/relay/steps/group-change.js';
import { groupCreate } from '../../framework/relay/steps/group-create.js';
import {
  intentsAfterCommit,
  intentWork,
  MAX_INTENT_ATTEMPTS,
} from '../../framework/relay/steps/group-intents.js';
import {
  groupApplication,
  groupCommitted,
  groupProposal,
  groupReceived,
  groupRemoved,
} from '../../framework/relay/steps/group-received.js';
import {
  checkRejoin,
  readRejoin,
  rejoinAsk,
  rejoinAsked,
  rejoinDue,
  rejoinGivenUp,
  serveRejoin,
} from '../../framework/relay/steps/group-rejoin.js';
import { groupSend } from '../../framework/relay/steps/group-send.js';
import { groupWelcome, groupWelcomeBinding } from '../../framework/relay/steps/group-welcome.js';
import {
  joinRow,
  member,
  miner,
  NOW,
  openRow,
  reload,
  topicMessage,
  type Member,
} from '../support/group-steps.js';

let alice: Member;
let bob: Member;
let carol: Member;
let aliceLoaded: Loaded;
let bobLoaded: Loaded;
let welcomeToBob: Awaited<ReturnType<typeof joinRow>>;
const mark = (loaded: Loaded) => ({ groupId: loaded.record.groupId, digest: 'd1', at: NOW });

beforeAll(async () => {
  [alice, bob, carol] = await Promise.all([member(), member(), member()]);
  const created = await groupCreate(alice.ctx, [bob.bundle], 'team');
  aliceLoaded = created.write.next!;
  welcomeToBob = await joinRow(bob, created.write.commit.outbox![0]!);
  const step = groupWelcome(
    { existing: undefined, known: undefined },
    { ...welcomeToBob, sender: alice.hex, digest: 'w1', sealKey: alice.identity.sealPublic, now: NOW },
  );
  if (step.drop) throw new Error(step.drop);
  bobLoaded = step.write.next!;
});

afterAll(() => miner.close());

describe('groupWelcome', () => {
  it('joins a group we are not in: the group, the sender as a peer, the replay marks, joined', () => {
    const step = groupWelcome(
      { existing: undefined, known: undefined },
      { ...welcomeToBob, sender: alice.hex, digest: 'w1', sealKey: alice.identity.sealPublic, now: NOW },
    );
    if (step.drop) throw new Error(step.drop);
    expect(step.write.commit.peers![0]!.userId).toBe(alice.hex);
    expect(step.write.commit.welcome).toEqual({ digest: 'w1', at: NOW });
    expect(step.write.commit.consumedKeyPackage!.ref).toBe(toHex(welcomeToBob.joined.consumedRef));
    expect(step.write.next!.meta.name).toBe('team');
    expect(step.write.events).toEqual([
      {
        kind: 'joined',
        groupId: step.groupId,
        topicId: step.topicId,
        invitedBy: alice.hex,
        members: [alice.hex, bob.hex],
      },
    ]);
    expect(step.write.followUps).toEqual([{ kind: 'republish' }]);
  });

  it('refuses a Welcome for a group we are in unless it answers our rejoin request', () => {
    const input = {
      ...welcomeToBob,
      sender: alice.hex,
      digest: 'w1',
      sealKey: alice.identity.sealPublic,
      now: NOW,
    };
    expect(groupWelcome({ existing: bobLoaded.record, known: undefined }, input)).toEqual({
      drop: 'group_duplicate',
    });
    const asked = reload(bobLoaded);
    asked.meta.rejoinRequest = newRejoinRequest(
      NOW,
      alice.identity.signingPublic,
      welcomeToBob.joined.consumedRef,
    );
    const existing = { ...bobLoaded.record, meta: JSON.stringify(asked.meta), version: 7 };
    const step = groupWelcome({ existing, known: undefined }, input);
    if (step.drop) throw new Error(step.drop);
    expect(step.write.events[0]!.kind).toBe('rejoined');
    expect(step.write.commit.conversations![0]!).toMatchObject({ kind: 'group', version: 7 });
  });

  it('binds the GroupInfo signer to the envelope sender', () => {
    expect(groupWelcomeBinding(welcomeToBob.joined, welcomeToBob.opened.inner)).toBeUndefined();
    expect(
      groupWelcomeBinding(welcomeToBob.joined, { senderIdentityKey: carol.identity.signingPublic }),
    ).toBe('sender_binding');
  });
});

describe('the topic message once MLS processed it', () => {
  it('a proposal waits for the committer, who is told to commit', async () => {
    const proposed = await groupLeave(bob.ctx, reload(bobLoaded));
    const result = await mls.processGroupMessage(
      alice.ctx.mls,
      aliceLoaded.state,
      topicMessage(proposed.commit.outbox![0]!),
    );
    const write = groupProposal(reload(aliceLoaded), result, mark(aliceLoaded));
    expect(write.commit.processed).toEqual(mark(aliceLoaded));
    expect(write.next!.meta.pendingSince).toBe(NOW);
    expect(write.followUps).toEqual([{ kind: 'commit', groupId: aliceLoaded.record.groupId }]);
  });

  it('a commit is noted, its members event made, unfulfilled intents carried out again', async () => {
    const committed = await groupAdd(alice.ctx, reload(aliceLoaded), [carol.bundle]);
    const result = await mls.processGroupMessage(
      bob.ctx.mls,
      bobLoaded.state,
      topicMessage(committed.commit.outbox![0]!),
    );
    const loaded = reload(bobLoaded);
    loaded.meta.intents = [{ kind: 'remove', userId: carol.hex }];
    const write = groupCommitted(bob.ctx, loaded, result, mark(bobLoaded));
    expect(write.events[0]).toMatchObject({ kind: 'members', added: [carol.hex], removed: [] });
    expect(write.next!.meta.intents).toEqual([{ kind: 'remove', userId: carol.hex, attempts: 1 }]);
    expect(write.followUps).toContainEqual({ kind: 'carry-out', groupIds: [bobLoaded.record.groupId] });
  });

  it('our removal deletes the group and forgets it, unless it is the Remove half of our re-add', async () => {
    const loaded = reload(bobLoaded);
    const gone = groupRemoved(loaded, mark(bobLoaded));
    expect(gone.commit).toEqual({
      deleteConversations: [bobLoaded.record.groupId],
      processed: mark(bobLoaded),
    });
    expect(gone.followUps[0]).toMatchObject({ kind: 'forget', reason: 'removed' });
    loaded.meta.rejoinRequest = newRejoinRequest(NOW, alice.identity.signingPublic, new Uint8Array(32));
    const kept = groupRemoved(loaded, mark(bobLoaded));
    expect(kept.next!.meta.readdPendingSince).toBe(NOW);
    expect(kept.commit.deleteConversations).toBeUndefined();
  });

  it("an application message commits the handler's replies, data and intents with it", async () => {
    const sent = await groupSend(alice.ctx, reload(aliceLoaded), { content: 'ping', id: 'p1' }, []);
    const result = await mls.processGroupMessage(
      bob.ctx.mls,
      bobLoaded.state,
      topicMessage(sent.commit.outbox![0]!),
    );
    const loaded = reload(bobLoaded);
    const received = groupReceived(loaded, result, NOW)!;
    expect(received).toMatchObject({
      from: alice.hex,
      content: { content: 'ping' },
      conversation: { name: 'team' },
    });
    const changes = new GroupChanges();
    changes.add(bobLoaded.record.groupId, { kind: 'leave' });
    const run = {
      replies: [{ content: 'pong' }],
      conversationData: [{ conversationId: 'c', json: '1' }],
      changes,
    };
    const step = await groupApplication(bob.ctx, loaded, {
      result,
      received,
      run,
      changed: [],
      check: () => undefined,
      processed: mark(bobLoaded),
    });
    expect(step.drop).toBeUndefined();
    expect(step.write.commit.conversationData).toEqual(run.conversationData);
    expect(step.write.next!.meta.intents).toEqual([{ kind: 'leave' }]);
    expect(step.write.next!.meta.messagesSinceCommit).toBe(2);
    expect(step.write.followUps).toContainEqual({ kind: 'carry-out', groupIds: [bobLoaded.record.groupId] });
    const reply = await mls.processGroupMessage(
      alice.ctx.mls,
      sent.next!.state,
      topicMessage(step.write.commit.outbox![0]!),
    );
    expect(reply.kind).toBe('application');
  });

  it('a reply that can never be published is refused, not committed', async () => {
    const sent = await groupSend(alice.ctx, reload(aliceLoaded), { content: 'ping', id: 'p2' }, []);
    const result = await mls.processGroupMessage(
      bob.ctx.mls,
      bobLoaded.state,
      topicMessage(sent.commit.outbox![0]!),
    );
    const loaded = reload(bobLoaded);
    const received = groupReceived(loaded, result, NOW)!;
    const run = { replies: [{ content: 'too big' }], conversationData: [], changes: new GroupChanges() };
    const step = await groupApplication(bob.ctx, loaded, {
      result,
      received,
      run,
      changed: [],
      check: () => new Error('too large'),
      processed: mark(bobLoaded),
    });
    expect(step.refused).toHaveLength(1);
    expect(step.write.commit.outbox).toEqual([]);
  });
});

describe('GROUP_REJOIN', () => {
  it('a member asks once per interval, and gives up when the re-add never came', () => {
    const loaded = reload(bobLoaded);
    expect(rejoinDue(loaded, NOW)).toMatchObject({ kind: 'ask' });
    loaded.meta.rejoinRequestedAt = NOW - 10;
    expect(rejoinDue(loaded, NOW)).toEqual({ kind: 'wait' });
    loaded.meta.readdPendingSince = NOW - 601;
    expect(rejoinDue(loaded, NOW)).toEqual({ kind: 'give-up' });
    expect(rejoinGivenUp(loaded).followUps[0]).toMatchObject({ kind: 'forget', reason: 'removed' });
    expect(rejoinDue(reload(aliceLoaded), NOW)).toEqual({ kind: 'wait' });
  });

  it('the committer re-adds a member that really is behind, and only once per interval', async () => {
    const ask = await rejoinAsk(bob.ctx, bobLoaded, {
      identityKey: alice.identity.signingPublic,
      bundle: alice.bundle.record,
    });
    expect(rejoinAsked(reload(bobLoaded), ask, NOW).next!.meta.rejoinRequest).toBeDefined();
    const opened = await openRow(alice, ask.row);
    const request = readRejoin(opened);
    if ('drop' in request) throw new Error(request.drop);
    const sender = { userId: bob.hex, identityKey: bob.identity.signingPublic };
    // Bob's signed epoch equals the group's: not behind.
    expect(await checkRejoin(alice.ctx, reload(aliceLoaded), request, sender, NOW)).toBe('rejoin_not_behind');
    const ahead = (await groupAdd(alice.ctx, reload(aliceLoaded), [carol.bundle])).next!;
    expect(await checkRejoin(alice.ctx, reload(ahead), request, sender, NOW)).toBeUndefined();
    expect(await checkRejoin(bob.ctx, reload(bobLoaded), request, sender, NOW)).toBe('rejoin_invalid');
    const served = await serveRejoin(alice.ctx, reload(ahead), {
      opened,
      sender: bob.hex,
      bundle: bob.bundle.record,
      now: NOW,
    });
    if (served.drop) throw new Error(served.drop);
    expect(served.write.events[0]).toMatchObject({ kind: 'members', added: [bob.hex], removed: [bob.hex] });
    expect(served.write.commit.envelope).toBeDefined();
    const again = reload(served.write.next!);
    expect(await checkRejoin(alice.ctx, again, request, sender, (NOW + 1) as UnixSeconds)).toBe(
      'rejoin_quota',
    );
    expect(readRejoin({ ...opened, tokenSession: 'x' })).toEqual({ drop: 'access_session' });
  });
});

describe('intents', () => {
  it('are kept for a bounded number of commits and read as the calls that carry them out', () => {
    const intents = [
      { kind: 'add' as const, userId: carol.hex },
      { kind: 'leave' as const, attempts: MAX_INTENT_ATTEMPTS },
    ];
    expect(intentsAfterCommit(intents)).toEqual([{ kind: 'add', userId: carol.hex, attempts: 1 }]);
    expect(intentWork(intents)).toEqual({ adds: [carol.hex], removes: [], leave: true });
  });
});
