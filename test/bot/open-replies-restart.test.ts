/**
 * A replica that restarts under the same id while another replica is the scheduler's owner: the
 * restarted one ends its own leftover markers at start-up (isLeftover: its id, an earlier boot),
 * and the owner, which read the registry while the replica was down, ends them as a dead replica's.
 * Both passes list the marker before either commits its end; each marker must be ended once.
 */
import { pino } from 'pino';
import {
  INTERRUPTED_REPLY,
  MemoryDataStore,
  TOMBSTONE,
  openReplyKey,
  type OpenReply,
  type PostFn,
} from '../../framework/bot/index.js';
import { endInterruptedOnStart, type InterruptedEnds } from '../../framework/bot/detached-wiring.js';
import { MemoryLeaseStore } from '../../framework/relay/memory-lease-store.js';
import type { ContentInput } from '../../framework/relay/content.js';
import { ALICE } from './helpers.js';

test('a same-id restart and the dead-replica sweep of the owner end one marker once', async () => {
  const store = new MemoryDataStore();
  const registry = new MemoryLeaseStore();
  // The owner B is registered and live; A (down, restarting) has no live row when B reads.
  await registry.registerReplica({ replicaId: 'B' });
  const marker: OpenReply = { to: { kind: 'direct', id: ALICE }, replyTo: 'q1', owner: 'A', boot: 'a-old' };
  store.transaction().saveData(openReplyKey('Agent', 'r1'), JSON.stringify(marker));

  // Both passes list the markers before either one's end commits: the window a restart opens.
  let lists = 0;
  let bothListed!: () => void;
  const listedTwice = new Promise<void>((r) => (bothListed = r));
  const list = async (prefix: string): Promise<Array<{ conversationId: string; json: string }>> => {
    const rows = await store.listConversationData(prefix);
    if (++lists === 2) bothListed();
    return rows;
  };
  const sent: ContentInput[] = [];
  const tx = store.transaction();
  const post: PostFn = async (_to, content, data) => {
    await listedTwice;
    sent.push(content);
    for (const d of data) tx.saveData(d.conversationId, d.json);
    return { id: 'x' };
  };
  const ends = (who: 'A' | 'B', boot: string, owner: boolean): InterruptedEnds => ({
    bot: 'Agent',
    store: { listConversationData: list } as unknown as InterruptedEnds['store'],
    post,
    duties: { owns: () => owner },
    log: pino({ level: 'silent' }),
    self: { owner: who, boot },
    replica: { replicaId: who, registry },
    connected: () => true,
    halted: () => false,
  });

  await Promise.all([
    endInterruptedOnStart(ends('A', 'a-new', false)),
    endInterruptedOnStart(ends('B', 'b-1', true)),
  ]);
  expect(sent).toEqual([{ content: INTERRUPTED_REPLY, replyTo: 'q1' }]);
  expect(store.get(openReplyKey('Agent', 'r1'))).toBe(TOMBSTONE);
});
