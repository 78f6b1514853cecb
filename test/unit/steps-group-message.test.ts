// The front half of a group topic message (steps/group-message.ts) on real MLS groups, no broker.
import { asUserId } from '../../framework/relay/brand.js';
import { ManualClock } from '../../framework/relay/clock.js';
import { systemRandom } from '../../framework/relay/random.js';
import { encodeGroupPayload } from '../../framework/relay/envelope.js';
import {
  commitGroup,
  createMlsContext,
  encryptApplication,
  generateKeyPackage,
  joinFromWelcome,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import type { StepContext } from '../../framework/relay/steps/context.js';
import {
  groupMessage,
  readGroupPayload,
  type GroupPayload,
} from '../../framework/relay/steps/group-message.js';
import { buildGroup, dec, enc, makeIdentity, nowSeconds, type Participant } from './mls-helpers.js';

let mlsCtx: MlsContext;
let members: Participant[];
const limits = { maxMembers: 250 };

const ctxOf = (p: Participant): StepContext => ({
  mls: mlsCtx,
  selfId: asUserId(p.id.userId),
  clock: new ManualClock(nowSeconds()),
  random: systemRandom,
});

function read(message: Uint8Array): GroupPayload {
  const r = readGroupPayload(encodeGroupPayload(message), 64 * 1024);
  if ('drop' in r) throw new Error(`unreadable: ${r.drop}`);
  return r;
}

beforeAll(async () => {
  mlsCtx = await createMlsContext();
  members = await buildGroup(mlsCtx, 3);
});

describe('readGroupPayload', () => {
  it('refuses what is too large or not a GroupPayload before any state is loaded', () => {
    expect(readGroupPayload(new Uint8Array(100), 99)).toEqual({ drop: 'oversize' });
    expect(readGroupPayload(enc('not cbor at all'), 1000)).toEqual({ drop: 'group_payload' });
  });
});

describe('groupMessage', () => {
  it('processes an application message from another member', async () => {
    const [alice, bob] = members as [Participant, Participant];
    const sent = await encryptApplication(mlsCtx, alice.state, enc('hello group'));
    const step = await groupMessage(
      ctxOf(bob),
      { state: bob.state, processed: false },
      read(sent.message),
      limits,
    );
    if (step.drop) throw new Error(`dropped: ${step.drop}`);
    expect(step.result.kind).toBe('application');
    expect(step.result.kind === 'application' && dec(step.result.plaintext)).toBe('hello group');
  });

  it('drops a processed digest, and our own message echoed back, as duplicates', async () => {
    const [alice, bob] = members as [Participant, Participant];
    const sent = await encryptApplication(mlsCtx, alice.state, enc('again'));
    expect(
      await groupMessage(ctxOf(bob), { state: bob.state, processed: true }, read(sent.message), limits),
    ).toEqual({
      drop: 'duplicate',
    });
    expect(
      await groupMessage(ctxOf(alice), { state: sent.state, processed: false }, read(sent.message), limits),
    ).toEqual({ drop: 'duplicate' });
  });

  it('asks for a rejoin when the message is from a later epoch, and drops an old commit as a fork', async () => {
    const [alice, bob] = members as [Participant, Participant];
    const committed = await commitGroup(mlsCtx, alice.state);
    const later = await encryptApplication(mlsCtx, committed.state, enc('from the next epoch'));
    expect(
      await groupMessage(ctxOf(bob), { state: bob.state, processed: false }, read(later.message), limits),
    ).toEqual({
      drop: 'group_epoch_gap',
      followUp: 'rejoin',
    });
    const step = await groupMessage(
      ctxOf(bob),
      { state: bob.state, processed: false },
      read(committed.commit),
      limits,
    );
    if (step.drop) throw new Error(`dropped: ${step.drop}`);
    expect(step.result.kind).toBe('commit');
    const moved = step.result.state;
    const replayed = await groupMessage(
      ctxOf(bob),
      { state: moved, processed: false },
      read(committed.commit),
      limits,
    );
    expect(replayed).toEqual({ drop: 'group_fork' });
  });

  it('drops the commit whose Welcome we joined through as stale, not as a fork, and still sees a real fork', async () => {
    // The committer's outbox republishes its commit after a restart; a member that joined through
    // that commit's Welcome receives it after its join: harmless, its first epoch is that commit's.
    const [alice] = members as [Participant];
    const dave = makeIdentity();
    const kp = await generateKeyPackage(mlsCtx, dave, nowSeconds());
    const adding = await commitGroup(mlsCtx, alice.state, { adds: [kp.keyPackage] });
    if (adding.welcome === undefined) throw new Error('no Welcome for dave');
    const joined = await joinFromWelcome(mlsCtx, adding.welcome, adding.ratchetTree, [kp], {
      members: { min: 2, max: 250 },
    });
    const daveP: Participant = { id: dave, state: joined.state };
    expect(
      await groupMessage(
        ctxOf(daveP),
        { state: joined.state, processed: false },
        read(adding.commit),
        limits,
      ),
    ).toEqual({ drop: 'group_stale' });

    // Two different commits for the epoch dave joined at: the second one is a fork.
    const first = await commitGroup(mlsCtx, adding.state);
    const second = await commitGroup(mlsCtx, adding.state);
    const step = await groupMessage(
      ctxOf(daveP),
      { state: joined.state, processed: false },
      read(first.commit),
      limits,
    );
    if (step.drop) throw new Error(`dropped: ${step.drop}`);
    expect(
      await groupMessage(
        ctxOf(daveP),
        { state: step.result.state, processed: false },
        read(second.commit),
        limits,
      ),
    ).toEqual({ drop: 'group_fork' });
  });

  it('drops a commit that takes the group past the member cap', async () => {
    const [alice, bob] = members as [Participant, Participant];
    const committed = await commitGroup(mlsCtx, alice.state);
    expect(
      await groupMessage(ctxOf(bob), { state: bob.state, processed: false }, read(committed.commit), {
        maxMembers: 2,
      }),
    ).toEqual({ drop: 'group_too_large' });
  });

  it('drops what MLS refuses', async () => {
    const [alice, bob] = members as [Participant, Participant];
    const sent = await encryptApplication(mlsCtx, alice.state, enc('x'));
    const tampered = sent.message.slice();
    tampered[tampered.length - 1]! ^= 1;
    const logged: string[] = [];
    const step = await groupMessage(
      ctxOf(bob),
      { state: bob.state, processed: false },
      read(tampered),
      limits,
      (e) => logged.push(e),
    );
    expect(step).toEqual({ drop: 'mls' });
    expect(logged).toHaveLength(1);
  });
});
