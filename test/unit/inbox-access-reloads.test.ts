/**
 * How long an envelope with an unknown access hint waits for another replica's commit (inbound.ts,
 * issue 13): up to 12 access reloads (about 3 s at the default spacing), each followed by a fresh
 * check; dropped as 'pow' when none explains it, and at once when too many envelopes wait already.
 */
import type { EnvelopeCheck } from '../../framework/relay/inbound-envelope.js';
import { InboxPipeline, type InboxPipelineDeps } from '../../framework/relay/inbound.js';
import { KeyedSerialQueue } from '../../framework/relay/keyed-queue.js';

const unknownHint: EnvelopeCheck = { ok: false, reason: 'pow', retryAfterEarlier: true };

function pipeline(reload: () => Promise<boolean>) {
  const dropped: string[] = [];
  let checks = 0;
  const deps: InboxPipelineDeps = {
    queue: new KeyedSerialQueue(),
    check: async () => {
      checks++;
      return unknownHint;
    },
    receive: async () => undefined,
    dropped: (reason) => void dropped.push(reason),
    securityDrop: () => undefined,
    refuseIfOverloaded: (e) => {
      throw e;
    },
    reloadAccess: reload,
  };
  return { inbox: new InboxPipeline(deps), dropped, checks: () => checks };
}

test('a hint nothing explains is checked again after each of 12 reloads, then dropped as pow', async () => {
  let reloads = 0;
  const p = pipeline(async () => {
    reloads++;
    return true;
  });
  await p.inbox.receive('t', new Uint8Array(1));
  expect(reloads).toBe(12);
  expect(p.checks()).toBe(1 + 1 + 12); // on arrival, after earlier key changes, after each reload
  expect(p.dropped).toEqual(['pow']);
});

test('refused a place among the waiting envelopes, it is dropped without waiting further', async () => {
  let reloads = 0;
  const p = pipeline(async () => ++reloads < 3);
  await p.inbox.receive('t', new Uint8Array(1));
  expect(reloads).toBe(3);
  expect(p.dropped).toEqual(['pow']);
});
