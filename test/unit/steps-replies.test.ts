// The one reply-encryption loop (steps/encrypt-replies.ts), run on real MLS states without a broker.
import { decodeContent } from '../../framework/relay/content.js';
import { HandlerError } from '../../framework/relay/errors.js';
import {
  createMlsContext,
  createOneToOne,
  generateKeyPackage,
  joinFromWelcome,
  processMessage,
  type GroupSession,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import { systemRandom } from '../../framework/relay/random.js';
import type { OutboxRecord } from '../../framework/relay/store.js';
import { encryptReplies, type ReplyFraming } from '../../framework/relay/steps/encrypt-replies.js';
import { makeIdentity, nowSeconds } from './mls-helpers.js';

let ctx: MlsContext;
let stepCtx: { mls: MlsContext; random: typeof systemRandom };
let alice: GroupSession;
let bob: GroupSession;

beforeAll(async () => {
  ctx = await createMlsContext();
  stepCtx = { mls: ctx, random: systemRandom };
  const now = nowSeconds();
  const bobId = makeIdentity();
  const bobKp = await generateKeyPackage(ctx, bobId, now);
  const created = await createOneToOne(ctx, makeIdentity(), bobKp.keyPackage, { now });
  alice = created.state;
  bob = (await joinFromWelcome(ctx, created.welcome, created.ratchetTree, [bobKp])).state;
});

function framing(overrides: Partial<ReplyFraming> = {}): ReplyFraming & { framedIn: GroupSession[] } {
  const framedIn: GroupSession[] = [];
  return {
    framedIn,
    row: (state, message) => {
      framedIn.push(state);
      return Promise.resolve({
        id: `row-${framedIn.length}`,
        topic: 't',
        payload: message,
        createdAt: 0,
      } as OutboxRecord);
    },
    check: () => undefined,
    ...overrides,
  };
}

describe('encryptReplies', () => {
  it('encrypts each reply with the state the previous one left, in order, answering the message', async () => {
    const f = framing();
    const out = await encryptReplies(
      stepCtx,
      alice,
      [{ content: 'one' }, { content: 'two' }],
      { content: 'q', id: 'm1', type: 'text' },
      f,
    );
    expect(out.rows.map((r) => r.id)).toEqual(['row-1', 'row-2']);
    expect(out.consumed).toHaveLength(2);
    expect(out.refused).toEqual([]);
    expect(f.framedIn[0]).toBe(alice);
    expect(f.framedIn[1]).not.toBe(alice);
    // The peer reads both, in order, each a reply to the message that caused it.
    let state = bob;
    const read: string[] = [];
    for (const row of out.rows) {
      const r = await processMessage(ctx, state, row.payload);
      if (r.kind !== 'application') throw new Error(`expected application, got ${r.kind}`);
      const c = decodeContent(r.plaintext!);
      expect(c.replyTo).toBe('m1');
      read.push(c.content);
      state = r.state;
    }
    expect(read).toEqual(['one', 'two']);
  });

  it('leaves out a reply that can never be published, without advancing the state for it', async () => {
    let seen = 0;
    const f = framing({ check: () => (++seen === 1 ? new Error('too large') : undefined) });
    const out = await encryptReplies(
      stepCtx,
      alice,
      [{ content: 'big' }, { content: 'small' }],
      { content: 'q', type: 'text' },
      f,
    );
    expect(out.rows).toHaveLength(1);
    expect(out.consumed).toHaveLength(1);
    expect(out.refused).toHaveLength(1);
    expect(out.refused[0]).toBeInstanceOf(HandlerError);
    // The refused reply's state was not kept: the kept one is framed in the state we started with.
    expect(f.framedIn[1]).toBe(alice);
    const r = await processMessage(ctx, bob, out.rows[0]!.payload);
    expect(r.kind === 'application' && decodeContent(r.plaintext!).content).toBe('small');
  });

  it('leaves out a reply whose content breaks §8 (a reaction to a message without id), and sends the rest', async () => {
    const f = framing();
    const out = await encryptReplies(
      stepCtx,
      alice,
      [{ content: '👍', type: 'reaction' }, { content: 'still here' }],
      { content: 'q', type: 'text' },
      f,
    );
    expect(out.refused).toHaveLength(1);
    expect(out.refused[0]).toBeInstanceOf(HandlerError);
    expect(out.refused[0]!.message).toMatch(/reaction content: "reply_to"/);
    expect(out.rows).toHaveLength(1);
    expect(f.framedIn).toEqual([alice]);
    const r = await processMessage(ctx, bob, out.rows[0]!.payload);
    expect(r.kind === 'application' && decodeContent(r.plaintext!).content).toBe('still here');
  });

  it('pads group replies to the framing block and leaves inbox replies unpadded', async () => {
    const padded = await encryptReplies(
      stepCtx,
      alice,
      [{ content: 'x' }],
      { content: 'q', type: 'text' },
      framing({ padTo: 64 }),
    );
    const plain = await encryptReplies(
      stepCtx,
      alice,
      [{ content: 'x' }],
      { content: 'q', type: 'text' },
      framing(),
    );
    const a = await processMessage(ctx, bob, padded.rows[0]!.payload);
    const b = await processMessage(ctx, bob, plain.rows[0]!.payload);
    if (a.kind !== 'application' || b.kind !== 'application') throw new Error('expected application');
    expect(a.plaintext!.length % 64).toBe(0);
    expect(b.plaintext!.length).toBeLessThan(a.plaintext!.length);
  });

  it('returns the state unchanged when there is nothing to reply', async () => {
    const out = await encryptReplies(stepCtx, alice, [], { content: 'q', type: 'text' }, framing());
    expect(out.state).toBe(alice);
    expect(out.rows).toEqual([]);
  });
});
