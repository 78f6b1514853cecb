/**
 * Arrival order in the inbox (inbound.ts, issue 13): an envelope whose access hint is unknown here
 * waits for earlier key changes and access reloads outside the arrival chain, so nobody else waits
 * behind it; envelopes that may belong to its conversation (the same hint) still follow it, and
 * waiting envelopes that one reload explains go on in the order they arrived.
 */
import { toHex, utf8 } from '../../framework/relay/bytes.js';
import { generateIdentity, type Identity } from '../../framework/relay/identity.js';
import type { EnvelopeCheck, OpenedEnvelope } from '../../framework/relay/inbound-envelope.js';
import { InboxPipeline } from '../../framework/relay/inbound.js';
import { KeyedSerialQueue } from '../../framework/relay/keyed-queue.js';
import { MSG_TYPE } from '../../framework/relay/labels.js';
import { until } from '../support/groups.js';

interface Sent {
  name: string;
  hint: string;
  from: Identity;
  welcome?: boolean;
}

const hostile = generateIdentity();
const peer = generateIdentity();
const other = generateIdentity();

/** An inbox whose checks know the hints in `known`, with reloads and lane work the test releases. */
function inbox(opts: { replicas: boolean }) {
  const sent: Sent[] = [];
  const known = new Set<string>();
  const received: string[] = [];
  const dropped: string[] = [];
  const reloads: Array<(ok: boolean) => void> = [];
  const laneGates = new Map<string, () => void>();
  const check = async (payload: Uint8Array): Promise<EnvelopeCheck> => {
    const s = sent[payload[0]!]!;
    const hintBytes = utf8(s.hint);
    if (!s.welcome && !known.has(s.hint)) {
      return { ok: false, reason: 'pow', retryAfterEarlier: true, hint: toHex(hintBytes) };
    }
    const opened = {
      envelope: {
        enc: new Uint8Array(32),
        ciphertext: payload,
        powNonce: 0n,
        sentAt: 0,
        access: { hint: hintBytes, tag: new Uint8Array(16) },
      },
      inner: {
        msgType: s.welcome ? MSG_TYPE.welcome : MSG_TYPE.message,
        senderId: s.from.userId,
        senderIdentityKey: s.from.signingPublic,
        mls: new Uint8Array(0),
      },
      digest: s.name,
      claim: { settle: () => undefined },
    } as unknown as OpenedEnvelope;
    return { ok: true, value: opened };
  };
  const pipeline = new InboxPipeline({
    queue: new KeyedSerialQueue(),
    check,
    receive: async (opened) => {
      const name = opened.digest;
      received.push(name);
      const gate = laneGates.get(name);
      if (gate) await new Promise<void>((r) => laneGates.set(name, r));
      return undefined;
    },
    dropped: (reason) => void dropped.push(reason),
    securityDrop: () => void dropped.push('sender_binding'),
    refuseIfOverloaded: (e) => {
      throw e;
    },
    ...(opts.replicas ? { reloadAccess: () => new Promise<boolean>((r) => reloads.push(r)) } : {}),
  });
  const arrivals: Array<Promise<void>> = [];
  return {
    known,
    received,
    dropped,
    reloads,
    laneGates,
    arrive(s: Sent): void {
      sent.push(s);
      arrivals.push(pipeline.receive('inbox', new Uint8Array([sent.length - 1])));
    },
    /** Answers every reload asked for so far, then lets the re-checks run. */
    async reload(order: 'asked' | 'reversed' = 'asked'): Promise<void> {
      const answering = reloads.splice(0);
      for (const r of order === 'asked' ? answering : answering.reverse()) r(true);
      await new Promise((r) => setTimeout(r, 5));
    },
    /** Lets every waiting envelope run out of reloads, then waits for every arrival. */
    async settle(): Promise<void> {
      for (let i = 0; i < 20; i++) await this.reload();
      for (const open of laneGates.values()) open();
      await Promise.all(arrivals);
    },
  };
}

test("made-up hints waiting for a reload do not hold up another peer's command", async () => {
  const p = inbox({ replicas: true });
  for (let i = 0; i < 3; i++) p.arrive({ name: `bogus${i}`, hint: `made-up-${i}`, from: hostile });
  p.known.add('good');
  p.arrive({ name: 'command', hint: 'good', from: other });
  await until(() => p.received.includes('command'), 5_000, 'the command answered');
  // Answered while the made-up hints still wait for their first reload.
  expect(p.reloads.length).toBeGreaterThan(0);
  expect(p.dropped).toEqual([]);
  await p.settle();
  expect(p.received).toEqual(['command']);
  expect(p.dropped).toEqual(['pow', 'pow', 'pow']);
});

test('a peer burst behind its first contact (one unknown hint) goes on in order, others meanwhile', async () => {
  const p = inbox({ replicas: true });
  p.arrive({ name: 'bogus', hint: 'made-up', from: hostile });
  p.arrive({ name: 'p1', hint: 'peer', from: peer });
  p.arrive({ name: 'p2', hint: 'peer', from: peer });
  await until(() => p.reloads.length === 3, 5_000, 'three envelopes waiting');
  // The other replica's commit is in the store now; p3 is explained on arrival, yet comes after
  // p1 and p2, which wait for the reload that shows it to this replica.
  p.known.add('peer');
  p.arrive({ name: 'p3', hint: 'peer', from: peer });
  p.known.add('good');
  p.arrive({ name: 'command', hint: 'good', from: other });
  await until(() => p.received.includes('command'), 5_000, 'the command answered');
  expect(p.received).toEqual(['command']);
  await p.reload();
  await until(() => p.received.length === 4, 5_000, 'the burst answered');
  expect(p.received).toEqual(['command', 'p1', 'p2', 'p3']);
  await p.settle();
  expect(p.dropped).toEqual(['pow']);
});

test('envelopes of different hints that one reload explains go on in arrival order', async () => {
  const p = inbox({ replicas: true });
  // One session across an hour boundary: the hint changes, the conversation does not.
  p.arrive({ name: 'p1', hint: 'peer-hour-1', from: peer });
  p.arrive({ name: 'p2', hint: 'peer-hour-2', from: peer });
  await until(() => p.reloads.length === 2, 5_000, 'two envelopes waiting');
  p.known.add('peer-hour-1');
  p.known.add('peer-hour-2');
  // Answered the other way round: p2's re-check may be asked for first; the round orders them.
  await p.reload('reversed');
  await until(() => p.received.length === 2, 5_000, 'both answered');
  expect(p.received).toEqual(['p1', 'p2']);
  await p.settle();
});

test('a message waiting for an earlier Welcome in flight does not hold up another peer', async () => {
  const p = inbox({ replicas: false });
  p.laneGates.set('welcome', () => undefined);
  p.arrive({ name: 'welcome', hint: 'none', from: peer, welcome: true });
  await until(() => p.received.includes('welcome'), 5_000, 'the Welcome in its lane');
  p.arrive({ name: 'p1', hint: 'peer', from: peer });
  p.known.add('good');
  p.arrive({ name: 'command', hint: 'good', from: other });
  await until(() => p.received.includes('command'), 5_000, 'the command answered');
  expect(p.received).toEqual(['welcome', 'command']);
  // The Welcome's session is set up once it is processed; the waiting message goes on then.
  p.known.add('peer');
  p.laneGates.get('welcome')!();
  await p.settle();
  expect(p.received).toEqual(['welcome', 'command', 'p1']);
  expect(p.dropped).toEqual([]);
});
