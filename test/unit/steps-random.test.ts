// Randomness on the step context (steps/context.ts, random.ts): with a substituted Random the ids
// a step gives its outbox rows and replies are the ones the test chose, run after run.
import { decodeContent } from '../../framework/relay/content.js';
import * as mls from '../../framework/relay/mls/index.js';
import type { Random } from '../../framework/relay/random.js';
import { encryptReplies } from '../../framework/relay/steps/encrypt-replies.js';
import { groupCreate } from '../../framework/relay/steps/group-create.js';
import { groupSend } from '../../framework/relay/steps/group-send.js';
import { topicRow, type GroupStepContext } from '../../framework/relay/steps/group-write.js';
import { joinRow, member, miner, reload, topicMessage, type Member } from '../support/group-steps.js';

/** Ids `<prefix>-1`, `<prefix>-2`, … in the order they are asked for. */
function countingRandom(prefix: string): Random & { asked: number } {
  const r = {
    asked: 0,
    uuid: () => `${prefix}-${++r.asked}`,
    bytes: (n: number) => new Uint8Array(n).fill(r.asked),
  };
  return r;
}

/** Alice's step context with `random` in place of node:crypto's, for the steps and their sealing. */
function withRandom(m: Member, random: Random): GroupStepContext {
  return { ...m.ctx, random, seal: { ...m.ctx.seal, random } };
}

let alice: Member;
let bob: Member;
let carol: Member;

beforeAll(async () => {
  [alice, bob, carol] = await Promise.all([member(), member(), member()]);
});

afterAll(() => miner.close());

test('groupCreate: each Welcome row takes the next id of the substituted Random, the same on every run', async () => {
  const ids: string[][] = [];
  for (let run = 0; run < 2; run++) {
    const random = countingRandom('welcome');
    const created = await groupCreate(withRandom(alice, random), [bob.bundle, carol.bundle], 'team');
    ids.push(created.write.commit.outbox!.map((r) => r.id));
    expect(random.asked).toBe(2);
  }
  expect(ids).toEqual([
    ['welcome-1', 'welcome-2'],
    ['welcome-1', 'welcome-2'],
  ]);
});

test('groupSend and encryptReplies: the topic row and the reply content carry ids from the Random', async () => {
  const created = await groupCreate(alice.ctx, [bob.bundle], undefined);
  let bobState = (await joinRow(bob, created.write.commit.outbox![0]!)).joined.state;
  const random = countingRandom('send');
  const ctx = withRandom(alice, random);

  const sent = await groupSend(ctx, reload(created.write.next!), { content: 'hi', id: 'm1' }, []);
  const [row] = sent.commit.outbox!;
  expect(row!.id).toBe('send-1');

  const replies = await encryptReplies(
    ctx,
    sent.decoded!,
    [{ content: 'a reply' }],
    { content: 'q', id: 'q1', type: 'text' },
    {
      row: async (_framedIn, message) => topicRow(ctx, created.topicId, message),
      check: () => undefined,
    },
  );
  // The reply's content id is asked for first, then its row's.
  expect(replies.rows.map((r) => r.id)).toEqual(['send-3']);

  const first = await mls.processGroupMessage(bob.ctx.mls, bobState, topicMessage(row!));
  if (first.kind !== 'application') throw new Error(`expected an application message, got ${first.kind}`);
  expect(decodeContent(first.plaintext!).id).toBe('m1');
  bobState = first.state;
  const reply = await mls.processGroupMessage(bob.ctx.mls, bobState, topicMessage(replies.rows[0]!));
  if (reply.kind !== 'application') throw new Error(`expected an application message, got ${reply.kind}`);
  expect(decodeContent(reply.plaintext!)).toMatchObject({ content: 'a reply', id: 'send-2', replyTo: 'q1' });
});
