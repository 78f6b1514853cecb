/**
 * The fuzz corpus as regression tests: every seed and every checked-in input under
 * test/fuzz/corpus/<target>/ (findings that were fixed, and inputs kept for what they reach) must
 * end in our typed errors or be accepted, never in another exception. A short fixed-seed mutation
 * run per decoder shows the harness itself finds what it should: a decoder made to throw a plain
 * Error is caught as a finding.
 */
import { readdirSync } from 'node:fs';
import { CodecError, decodeEnvelope, generateIdentity, mls } from '../../framework/relay/index.js';
import { Rng, mutate } from './mutator.js';
import { decoderTargets, isExpected, pipelineTarget, type FuzzTarget } from './targets.js';
import { bombTree } from '../support/tree-bomb.js';
import { corpusFiles } from './corpus-files.js';

async function outcome(target: FuzzTarget, input: Uint8Array): Promise<string> {
  try {
    return await target.run(input);
  } catch (e) {
    if (isExpected(e)) throw new Error(`${target.name}: a typed error escaped run()`, { cause: e });
    throw e;
  }
}

describe.each(decoderTargets().map((t) => [t.name, t] as const))('fuzz target %s', (_name, target) => {
  test('seeds and checked-in corpus end in typed errors or are accepted', async () => {
    const inputs = [...(await target.seeds()), ...corpusFiles(target.name)];
    expect(inputs.length).toBeGreaterThan(0);
    for (const input of inputs) await expect(outcome(target, input)).resolves.toEqual(expect.any(String));
  });

  test('2,000 fixed-seed mutations: no finding', async () => {
    const seeds = await target.seeds();
    const rng = new Rng(7);
    for (let i = 0; i < 2000; i++) {
      const input = mutate(seeds[rng.below(seeds.length)]!, rng, seeds, target.dictionary, target.maxLength);
      await outcome(target, input);
    }
  });
});

test('the corpus holds the tree bomb, and it is refused by the bounds (not accepted, not a crash)', async () => {
  const files = readdirSync(new URL('./corpus/mls-framing/', import.meta.url)).filter((f) =>
    f.endsWith('.bin'),
  );
  expect(files).toContain('tree-bomb-unmerged-leaves.bin');
  const target = decoderTargets().find((t) => t.name === 'mls-framing')!;
  const [bomb] = corpusFiles('mls-framing').filter((b) => b.length > 4000);
  expect(await outcome(target, bomb!)).toMatch(/unmerged leaves/);
  // The checked-in bytes are what bombTree makes today from a genuine tree (same shape).
  const ctx = await mls.createMlsContext();
  const now = Math.floor(Date.now() / 1000);
  const kp = await mls.generateKeyPackage(ctx, generateIdentity(), now);
  const created = await mls.createOneToOne(ctx, generateIdentity(), kp.keyPackage, { now });
  expect(await outcome(target, Uint8Array.of(3, ...bombTree(created.ratchetTree, 1000)))).toMatch(
    /unmerged leaves/,
  );
});

test('a plain Error is a finding, our typed errors are not', () => {
  expect(isExpected(new CodecError('x'))).toBe(true);
  expect(isExpected(new TypeError('x'))).toBe(false);
  expect(() => decodeEnvelope(Uint8Array.of(0xff))).toThrow(CodecError);
});

test('pipeline: genuine 1:1 and group messages come out as messages, so mutations start deep', async () => {
  const target = pipelineTarget();
  try {
    const seeds = await target.seeds();
    const outcomes: string[] = [];
    for (const seed of [...seeds, ...corpusFiles('pipeline')]) {
      outcomes.push(await outcome(target, seed));
    }
    // 2 genuine 1:1 messages after the genuine Welcome, and 2 genuine group messages.
    expect(outcomes.filter((o) => o === 'message')).toHaveLength(4);
    // The same inputs again are replays or duplicates, never exceptions.
    for (const seed of seeds) expect(await outcome(target, seed)).toMatch(/^(drop:|none)/);
  } finally {
    await target.close?.();
  }
});
