// What follows a commit (after-commit.ts): publishing first, then the events and follow-ups, per
// conversation in commit order; a failed publish still lets them run and is reported to the caller.
import { AfterCommit, allRan } from '../../framework/relay/after-commit.js';

/** A publisher whose rounds the test acknowledges (or fails) by hand. */
function manualOutbox() {
  const rounds: Array<{ ack: () => void; fail: (e: Error) => void }> = [];
  const publish = () => new Promise<void>((resolve, reject) => rounds.push({ ack: resolve, fail: reject }));
  return { rounds, publish };
}

const tick = () => new Promise((r) => setImmediate(r));

test('events wait for the rows, and a later commit of the same conversation waits for an earlier one', async () => {
  const outbox = manualOutbox();
  const after = new AfterCommit({
    publish: outbox.publish,
    fail: (e) => {
      throw e;
    },
  });
  const log: string[] = [];
  const first = after.run('peer-a', true, () => void log.push('a1'));
  const second = after.run('peer-a', false, () => void log.push('a2'));
  const other = after.run('peer-b', false, () => void log.push('b1'));
  await other;
  await tick();
  // Nothing of peer-a before its first commit's rows were acknowledged; peer-b is not held back.
  expect(log).toEqual(['b1']);
  expect(outbox.rounds).toHaveLength(1);
  outbox.rounds[0]!.ack();
  await allRan([first, second]);
  expect(log).toEqual(['b1', 'a1', 'a2']);
  await after.idle();
});

test('a failed publish: the events still go out, the caller who waits sees the error, the queue goes on', async () => {
  const outbox = manualOutbox();
  const failures: unknown[] = [];
  const after = new AfterCommit({ publish: outbox.publish, fail: (e) => void failures.push(e) });
  const log: string[] = [];
  const failed = after.run('g', true, () => void log.push('events'));
  // Nobody waits on this one: its failure must not surface as an unhandled rejection.
  void after.run('g', true, () => {
    log.push('throws');
    throw new Error('follow-up failed');
  });
  const later = after.run('g', false, () => void log.push('later'));
  outbox.rounds[0]!.fail(new Error('broker gone'));
  outbox.rounds[1]!.ack();
  await expect(failed).rejects.toThrow('broker gone');
  await later;
  expect(log).toEqual(['events', 'throws', 'later']);
  expect(failures.map((e) => (e as Error).message)).toEqual(['follow-up failed']);
  await after.idle();
});
