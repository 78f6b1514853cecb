/**
 * How long an envelope with an unknown access hint waits for another replica's commit (inbound.ts,
 * issue 13): up to 12 access reloads (about 3 s at the default spacing), each followed by a fresh
 * check; dropped as 'pow' when none explains it, and at once when too many envelopes wait already.
 */
import {
  ACCESS_RELOAD_MAX_WAITING_ENVELOPES,
  AccessRefresh,
  type InboundVia,
} from '../../framework/relay/access-refresh.js';
import { toHex, utf8 } from '../../framework/relay/bytes.js';
import { generateIdentity } from '../../framework/relay/identity.js';
import type { EnvelopeCheck, OpenedEnvelope } from '../../framework/relay/inbound-envelope.js';
import { InboxPipeline, type InboxPipelineDeps } from '../../framework/relay/inbound.js';
import { KeyedSerialQueue } from '../../framework/relay/keyed-queue.js';
import { MSG_TYPE } from '../../framework/relay/labels.js';
import { DEFAULT_RECEIVE_MAXIMUM } from '../../framework/relay/transport-types.js';

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

/**
 * The real AccessRefresh behind the pipeline, and a broker that hands a connection at most
 * `window` unacknowledged messages (each acknowledged once its handler resolved): the drain of a
 * dead replica's session (slot-sessions.ts) hands over its whole backlog this way, every envelope
 * with a hint the dead replica's session set up, which this replica knows after a reload.
 */
function replicaInbox() {
  const from = generateIdentity();
  const hint = utf8('hint of the dead replica');
  let known = false;
  let reloads = 0;
  const received: number[] = [];
  const dropped: string[] = [];
  const refresh = new AccessRefresh({
    reload: async () => {
      reloads++;
      known = true;
    },
    minIntervalMs: 0,
  });
  const check = async (payload: Uint8Array): Promise<EnvelopeCheck> => {
    if (!known) return { ok: false, reason: 'pow', retryAfterEarlier: true, hint: toHex(hint) };
    const opened = {
      envelope: { access: { hint, tag: new Uint8Array(16) } },
      inner: { msgType: MSG_TYPE.message, senderId: from.userId, senderIdentityKey: from.signingPublic },
      claim: { settle: () => undefined },
      payload,
    } as unknown as OpenedEnvelope;
    return { ok: true, value: opened };
  };
  const inbox = new InboxPipeline({
    queue: new KeyedSerialQueue(),
    check,
    receive: async (opened) => {
      received.push((opened as unknown as { payload: Uint8Array }).payload[0]!);
      return undefined;
    },
    dropped: (reason) => void dropped.push(reason),
    securityDrop: () => void dropped.push('sender_binding'),
    refuseIfOverloaded: (e) => {
      throw e;
    },
    reloadAccess: (h, via) => refresh.request(h, via),
  });
  /** Delivers `count` envelopes on `via`, at most `window` of them unacknowledged at once. */
  const deliver = async (count: number, via: InboundVia, window = DEFAULT_RECEIVE_MAXIMUM) => {
    let next = 0;
    const connection = async () => {
      while (next < count) {
        const n = next++;
        await inbox.receive('inbox', Uint8Array.of(n), via);
      }
    };
    await Promise.all(Array.from({ length: window }, connection));
  };
  return { deliver, received, dropped, reloads: () => reloads };
}

test("a drain's burst of 100 envelopes of one hint not yet loaded: all processed after the reload, none dropped", async () => {
  // issue 13, replicas-netns: counted against the own transport's 32, the burst lost 31–34 as 'pow'.
  const r = replicaInbox();
  await r.deliver(100, 'drain');
  expect(r.dropped).toEqual([]);
  expect(r.received).toHaveLength(100);
  // In arrival order: envelopes of one hint keep their places (inbox-waits.ts).
  expect(r.received).toEqual(Array.from({ length: 100 }, (_, i) => i));
  // One reload explained the burst (a second may start for those that asked during the first).
  expect(r.reloads()).toBeLessThanOrEqual(2);
});

test('on the own connection the envelopes waiting stay bounded: past 32, the rest of a burst are dropped at once', async () => {
  // What keeps a flood of one made-up hint from filling the own receive window.
  const r = replicaInbox();
  await r.deliver(100, 'own');
  expect(r.dropped.length).toBeGreaterThan(0);
  expect(r.dropped.every((d) => d === 'pow')).toBe(true);
  expect(r.received.length + r.dropped.length).toBe(100);
  expect(r.received.length).toBeGreaterThanOrEqual(ACCESS_RELOAD_MAX_WAITING_ENVELOPES);
});
