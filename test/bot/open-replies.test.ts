/**
 * The start-up end of replies a crash cut short (open-replies.ts): markers left behind are ended
 * with INTERRUPTED_REPLY, or with the lost `typing stop` when their run had answered already.
 */
import { pino } from 'pino';
import {
  INTERRUPTED_REPLY,
  MemoryDataStore,
  TOMBSTONE,
  endInterruptedReplies,
  isLeftover,
  openReplyKey,
  type OpenReply,
  type PostFn,
  type PostTarget,
} from '../../framework/bot/index.js';
import type { ContentInput } from '../../framework/relay/content.js';
import { ALICE, GROUP_ID } from './helpers.js';

interface Posted {
  to: PostTarget;
  content: ContentInput;
  data: Array<{ conversationId: string; json: string }>;
}

/** A stand-in for the client's commit-then-publish send: records, and commits `data` into `store`. */
function poster(store: MemoryDataStore): { posted: Posted[]; post: PostFn } {
  const posted: Posted[] = [];
  const tx = store.transaction();
  return {
    posted,
    post: async (to, content, data) => {
      posted.push({ to, content, data });
      for (const d of data) tx.saveData(d.conversationId, d.json);
      return { id: content.id ?? 'x' };
    },
  };
}

describe('replies interrupted by a crash', () => {
  test('markers left behind are ended with INTERRUPTED_REPLY (the stream final when named) and deleted', async () => {
    const store = new MemoryDataStore();
    const tx = store.transaction();
    tx.saveData(
      openReplyKey('Agent', 'r1'),
      JSON.stringify({ to: { kind: 'direct', id: ALICE }, replyTo: 'q1' }),
    );
    tx.saveData(
      openReplyKey('Agent', 'r2'),
      JSON.stringify({ to: { kind: 'group', id: GROUP_ID }, replyTo: 'q2', stream: 's2' }),
    );
    tx.saveData(openReplyKey('Other', 'r3'), JSON.stringify({ to: { kind: 'direct', id: ALICE } }));
    tx.saveData(openReplyKey('Agent', 'r4'), 'not json at all');
    const p = poster(store);
    const ended = await endInterruptedReplies(
      'Agent',
      (x) => store.listConversationData(x),
      p.post,
      pino({ level: 'silent' }),
    );
    expect(ended).toBe(2);
    expect(p.posted.map((x) => [x.to, x.content])).toEqual([
      [
        { kind: 'direct', id: ALICE },
        { content: INTERRUPTED_REPLY, replyTo: 'q1' },
      ],
      [
        { kind: 'group', id: GROUP_ID },
        { type: 'text', id: 's2', content: INTERRUPTED_REPLY, replyTo: 'q2' },
      ],
    ]);
    expect(store.get(openReplyKey('Agent', 'r1'))).toBe(TOMBSTONE);
    expect(store.get(openReplyKey('Agent', 'r2'))).toBe(TOMBSTONE);
    expect(store.get(openReplyKey('Other', 'r3'))).not.toBe(TOMBSTONE);
  });

  test('a marker whose stream final went out (answered) is ended with the lost typing stop, not "interrupted"', async () => {
    const store = new MemoryDataStore();
    store
      .transaction()
      .saveData(
        openReplyKey('Agent', 'r5'),
        JSON.stringify({ to: { kind: 'direct', id: ALICE }, replyTo: 'q5', answered: true }),
      );
    const p = poster(store);
    await endInterruptedReplies(
      'Agent',
      (x) => store.listConversationData(x),
      p.post,
      pino({ level: 'silent' }),
    );
    expect(p.posted.map((x) => x.content)).toEqual([{ type: 'typing', state: 'stop', content: '' }]);
    expect(store.get(openReplyKey('Agent', 'r5'))).toBe(TOMBSTONE);
  });

  test('with replicas only leftovers are ended: own ones from an earlier start, and dead replicas’ by the scheduler owner', async () => {
    const store = new MemoryDataStore();
    const tx = store.transaction();
    const to = { kind: 'direct', id: ALICE } as const;
    const rows: Record<string, OpenReply> = {
      live: { to, replyTo: 'live', owner: 'bots/1', boot: 'b1' },
      dead: { to, replyTo: 'dead', owner: 'bots/2', boot: 'b2' },
      mineBefore: { to, replyTo: 'mineBefore', owner: 'bots/0', boot: 'old' },
      mineNow: { to, replyTo: 'mineNow', owner: 'bots/0', boot: 'now' },
      legacy: { to, replyTo: 'legacy' },
    };
    for (const [id, r] of Object.entries(rows)) tx.saveData(openReplyKey('Agent', id), JSON.stringify(r));
    const self = { owner: 'bots/0', boot: 'now' };
    const isDead = (replica: string): boolean => replica === 'bots/2';
    const endAs = async (schedulerOwner: boolean): Promise<string[]> => {
      const p = poster(store);
      await endInterruptedReplies(
        'Agent',
        (x) => store.listConversationData(x),
        p.post,
        pino({ level: 'silent' }),
        (m) => isLeftover(m, self, schedulerOwner, isDead),
      );
      return p.posted.map((x) => String(x.content.replyTo)).sort();
    };
    // Not the scheduler's owner: only this replica's own leftover.
    expect(await endAs(false)).toEqual(['mineBefore']);
    // The owner: the dead replica's and the ownerless one's too; the live run and this start's stay.
    expect(await endAs(true)).toEqual(['dead', 'legacy']);
    expect(store.get(openReplyKey('Agent', 'live'))).not.toBe(TOMBSTONE);
    expect(store.get(openReplyKey('Agent', 'mineNow'))).not.toBe(TOMBSTONE);
  });
});
