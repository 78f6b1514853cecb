/**
 * Group members of bench/group-fanout-spread.ts (and the quiet members of bench/group-bot.ts), in a child process so that a 100-member group's
 * receivers are spread over several processes (and cores) as they would be over devices:
 *
 *   group-members-child.ts <brokerUrl> <prefix> <count>
 *
 * Starts `count` RelayClients (MemoryRelayStore, PoW 8 bits). JSON lines to the parent
 * (bench/child.ts): `{"ready":true,"userIds":[…]}` once all serve, `{"joined":groupId}` for each
 * member's join, `{"got":contentId,"at":ms}` for each group message a member receives (`at`:
 * performance.timeOrigin + performance.now(), a wall clock every process on the machine shares),
 * and the CPU answers of serveParent.
 */
import { performance } from 'node:perf_hooks';
import type { ReceivedMessage, RelayClient } from '../framework/relay/index.js';
import { runChild, say, serveParent, troubleReport } from './child.js';
import { benchClient, inBatches } from './clients.js';

const BATCH = 10;

async function main(argv: readonly string[]): Promise<void> {
  const [url, prefix, countText] = argv;
  const count = Number(countText);
  if (!url || !prefix || !(count > 0))
    throw new Error('usage: group-members-child.ts <brokerUrl> <prefix> <count>');
  const troubles: Array<() => void> = [];
  const clients: RelayClient[] = await inBatches(count, BATCH, async () => {
    const c = await benchClient(url, prefix, {
      powBits: 8,
      welcomeQuota: { perSenderPerMinute: 20, totalPerMinute: 1000 },
      groups: { commitDelayMs: 20 },
    });
    troubles.push(troubleReport(c));
    c.on('message', (m: ReceivedMessage) => {
      if (m.conversation.kind === 'group')
        say({ got: m.content.id, at: performance.timeOrigin + performance.now() });
    });
    c.on('group', (e) => {
      if (e.kind === 'joined') say({ joined: e.groupId });
    });
    await c.start();
    return c;
  });
  say({ ready: true, userIds: clients.map((c) => c.userId) });
  serveParent(async () => {
    await Promise.all(clients.map((c) => c.stop().catch(() => undefined)));
    for (const t of troubles) t();
  });
}

runChild(main);
