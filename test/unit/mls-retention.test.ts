// Out-of-order retention for replicas (issue #13, docs/protocol.md §14): with shared subscriptions
// one sender's messages are processed by different replicas, so a replica that lags leaves gaps in
// the sender's ratchet that the others skip over. Each replica decodes the state the last commit
// stored (group-state-parts.ts), so what must survive is the stored state's retained keys.
import {
  createMlsContext,
  decodeGroupSession,
  encodeGroupSession,
  encryptApplication,
  processGroupMessage,
  type GroupSession,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import { RELAY_KEY_RETENTION } from '../../framework/relay/mls/context.js';
import { DEFAULT_RECEIVE_MAXIMUM } from '../../framework/relay/transport-types.js';
import { asUserId } from '../../framework/relay/brand.js';
import { ManualClock } from '../../framework/relay/clock.js';
import { encodeGroupPayload } from '../../framework/relay/envelope.js';
import { systemRandom } from '../../framework/relay/random.js';
import type { StepContext } from '../../framework/relay/steps/context.js';
import { groupMessage, readGroupPayload } from '../../framework/relay/steps/group-message.js';
import { buildGroup, dec, enc, nowSeconds, type Participant } from './mls-helpers.js';

let ctx: MlsContext;
beforeAll(async () => {
  ctx = await createMlsContext();
});

const BOUND = RELAY_KEY_RETENTION.retainKeysForGenerations;
/** The lag sized for: two replicas' receive windows (DEFAULT_RECEIVE_MAXIMUM) of one sender. */
const LAG = 2 * DEFAULT_RECEIVE_MAXIMUM;

/** The state as another replica sees it: encoded by the one that committed, decoded afresh. */
function viaStore(state: GroupSession): GroupSession {
  const { live, epoch } = encodeGroupSession(state);
  return decodeGroupSession({ live, epoch });
}

async function send(from: Participant, count: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const m = await encryptApplication(ctx, from.state, enc(`m${i}`));
    from.state = m.state;
    out.push(m.message);
  }
  return out;
}

/**
 * Replica B processes every odd message first (each through the store), leaving `gaps` even ones
 * for replica A, which then processes them oldest first; returns A's outcome for each.
 */
async function interleave(gaps: number): Promise<{ outcomes: string[]; storedBytes: number[] }> {
  const [bob, alice] = (await buildGroup(ctx, 2)) as [Participant, Participant];
  const messages = await send(alice, 2 * gaps);
  let stored = viaStore(bob.state);
  const storedBytes: number[] = [];
  for (let i = 1; i < messages.length; i += 2) {
    const got = await processGroupMessage(ctx, stored, messages[i]!);
    expect(dec(got.plaintext)).toBe(`m${i}`);
    stored = viaStore(got.state);
    storedBytes.push(encodeGroupSession(stored).live.length);
  }
  const outcomes: string[] = [];
  for (let i = 0; i < messages.length; i += 2) {
    try {
      const got = await processGroupMessage(ctx, stored, messages[i]!);
      outcomes.push(dec(got.plaintext));
      stored = viaStore(got.state);
    } catch (e) {
      outcomes.push((e as Error).message);
    }
  }
  return { outcomes, storedBytes };
}

test('a forward ratchet may skip every retained generation', () => {
  expect(RELAY_KEY_RETENTION.maximumForwardRatchetSteps).toBeGreaterThanOrEqual(BOUND);
});

test('messages held by lagging replicas while another processed later ones still decrypt', async () => {
  const { outcomes } = await interleave(LAG);
  expect(outcomes).toEqual(Array.from({ length: LAG }, (_, k) => `m${2 * k}`));
}, 60_000);

test('beyond the bound the oldest held message no longer decrypts; the stored state stays bounded', async () => {
  const { outcomes, storedBytes } = await interleave(BOUND + 4);
  // Four gaps too many: the four oldest keys were erased, the rest decrypt.
  expect(outcomes.slice(0, 4).every((o) => /Desired gen in the past/.test(o))).toBe(true);
  expect(outcomes.slice(4)).toEqual(Array.from({ length: BOUND }, (_, k) => `m${2 * (k + 4)}`));
  // Once the bound is reached, more gaps replace retained keys instead of adding to them.
  const atBound = storedBytes[BOUND - 1]!;
  expect(storedBytes.slice(BOUND)).toEqual(storedBytes.slice(BOUND).map(() => atBound));
}, 60_000);

test('the group step drops a message held beyond the bound as mls, which the shell counts', async () => {
  const [bob, alice] = (await buildGroup(ctx, 2)) as [Participant, Participant];
  const messages = await send(alice, 2 * (BOUND + 1));
  let stored = viaStore(bob.state);
  for (let i = 1; i < messages.length; i += 2) {
    stored = viaStore((await processGroupMessage(ctx, stored, messages[i]!)).state);
  }
  const stepCtx: StepContext = {
    mls: ctx,
    selfId: asUserId(bob.id.userId),
    clock: new ManualClock(nowSeconds()),
    random: systemRandom,
  };
  const step = (message: Uint8Array) => {
    const payload = readGroupPayload(encodeGroupPayload(message), 64 * 1024);
    if ('drop' in payload) throw new Error(`unreadable: ${payload.drop}`);
    return groupMessage(stepCtx, { state: stored, processed: false }, payload, { maxMembers: 250 });
  };
  // relay_drops_total{reason="mls"} counts what a step drops as 'mls' (inbound-router.ts).
  expect(await step(messages[0]!)).toEqual({ drop: 'mls' });
  const kept = await step(messages[2]!);
  if (kept.drop) throw new Error(`dropped: ${kept.drop}`);
  expect(kept.result.kind).toBe('application');
}, 60_000);
