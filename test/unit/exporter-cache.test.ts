/**
 * The exporter cache behind access keys for sealing (issue 12): the value exportSecret gives for
 * the session's current epoch, a new one at every epoch, never an entry shared by two states that
 * forked at the same epoch number, and a bounded number of entries.
 */
import type { UnixSeconds } from '../../framework/relay/brand.js';
import { generateIdentity } from '../../framework/relay/identity.js';
import {
  commitPending,
  createMlsContext,
  createOneToOne,
  epochOf,
  ExporterCache,
  exportSecret,
  generateKeyPackage,
  type GroupSession,
  type MlsContext,
} from '../../framework/relay/mls/index.js';

const NOW = Math.floor(Date.now() / 1000) as UnixSeconds;
const LABEL = 'relay test access';
const PEER = new Uint8Array(16).fill(7);

let ctx: MlsContext;

beforeAll(async () => {
  ctx = await createMlsContext();
});

async function newSession(): Promise<GroupSession> {
  const peer = await generateKeyPackage(ctx, generateIdentity(), NOW);
  return (await createOneToOne(ctx, generateIdentity(), peer.keyPackage, { now: NOW })).state;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('gives what exportSecret gives, asked again in the same epoch from one entry', async () => {
  const cache = new ExporterCache();
  const state = await newSession();
  const expected = hex(await exportSecret(ctx, state, LABEL, PEER, 32));
  expect(hex(await cache.export(ctx, state, LABEL, PEER, 32))).toBe(expected);
  expect(hex(await cache.export(ctx, state, LABEL, PEER, 32))).toBe(expected);
  expect(cache.size).toBe(1);
  // Another context (another peer) is another value.
  const other = await cache.export(ctx, state, LABEL, new Uint8Array(16).fill(8), 32);
  expect(hex(other)).toBe(hex(await exportSecret(ctx, state, LABEL, new Uint8Array(16).fill(8), 32)));
  expect(hex(other)).not.toBe(expected);
});

test('a new epoch gives its own value; two commits forked at the same epoch number do not share one', async () => {
  const cache = new ExporterCache();
  const state = await newSession();
  const before = hex(await cache.export(ctx, state, LABEL, PEER, 32));
  const first = (await commitPending(ctx, state)).state;
  const second = (await commitPending(ctx, state)).state;
  expect(epochOf(first)).toBe(epochOf(state) + 1n);
  expect(epochOf(second)).toBe(epochOf(first));
  const atFirst = hex(await cache.export(ctx, first, LABEL, PEER, 32));
  const atSecond = hex(await cache.export(ctx, second, LABEL, PEER, 32));
  expect(atFirst).toBe(hex(await exportSecret(ctx, first, LABEL, PEER, 32)));
  expect(atSecond).toBe(hex(await exportSecret(ctx, second, LABEL, PEER, 32)));
  expect(atFirst).not.toBe(before);
  expect(atSecond).not.toBe(atFirst);
});

test('keeps at most its capacity, least recently used out; callers get copies', async () => {
  const cache = new ExporterCache(2);
  const [a, b, c] = [await newSession(), await newSession(), await newSession()];
  const fromA = await cache.export(ctx, a, LABEL, PEER, 32);
  await cache.export(ctx, b, LABEL, PEER, 32);
  fromA.fill(0);
  expect(hex(await cache.export(ctx, a, LABEL, PEER, 32))).toBe(
    hex(await exportSecret(ctx, a, LABEL, PEER, 32)),
  );
  await cache.export(ctx, c, LABEL, PEER, 32);
  expect(cache.size).toBe(2);
});
