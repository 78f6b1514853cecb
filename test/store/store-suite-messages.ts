/**
 * Store suite, part of describeRelayStore (store-suite.ts). Per-message reads and checks:
 * loadForMessage, dedupe and replay, the sender index, parked inbound messages.
 */
import { StaleStateError } from '../../framework/relay/errors.js';
import { MESSAGE_SENDERS_PER_CONVERSATION } from '../../framework/relay/store.js';
import type { MessageSenderRecord, RelayStore } from '../../framework/relay/store.js';
import {
  at,
  DAY,
  bytes,
  allByteValues,
  session,
  groupId,
  group,
  direct,
  grouped,
  peer,
  outbox,
  isPlainBytes,
  type StoreSuiteContext,
} from './store-fixtures.js';

export function describeLoadForMessage(ctx: StoreSuiteContext): void {
  describe('loadForMessage', () => {
    let store: RelayStore;
    beforeEach(() => {
      store = ctx.store;
    });

    it('reads the session, the processed check and the peer at once', async () => {
      await store.commit({
        conversations: [session('g1', { peerId: 'p1' }), session('g2', { peerId: 'nobody' })].map(direct),
        peers: [peer('p1', { displayName: 'P', bundleIssuedAt: at(3) })],
        processed: { groupId: groupId('g1'), digest: 'd1', at: at() },
      });
      expect(await store.loadForMessage(groupId('g1'), 'd1')).toEqual({
        session: { ...session('g1', { peerId: 'p1' }), version: 1 },
        processed: true,
        peer: peer('p1', { displayName: 'P', bundleIssuedAt: at(3) }),
      });
      expect(await store.loadForMessage(groupId('g1'), 'd2')).toMatchObject({ processed: false });
      expect(await store.loadForMessage(groupId('g2'), 'd1')).toEqual({
        session: { ...session('g2', { peerId: 'nobody' }), version: 1 },
        processed: false,
        peer: undefined,
      });
      expect(await store.loadForMessage('missing', 'd1')).toBeUndefined();
    });

    it('with an envelope, checks the replay cache in the same read, as hasEnvelope does', async () => {
      await store.commit({
        conversations: [session('g1', { peerId: 'p1' })].map(direct),
        envelope: { digest: 'e1', expiresAt: at(100) },
      });
      const seen = (digest: string, now: number) =>
        store.loadForMessage(groupId('g1'), 'd1', { digest, now: at(now) });
      expect(await seen('e1', 100)).toMatchObject({ processed: false, envelopeSeen: true });
      expect(await seen('e1', 101)).toMatchObject({ envelopeSeen: false });
      expect(await seen('e2', 0)).toMatchObject({ envelopeSeen: false });
      expect(await store.loadForMessage('missing', 'd1', { digest: 'e1', now: at() })).toBeUndefined();
      expect(await store.loadForMessage(groupId('g1'), 'd1')).not.toHaveProperty('envelopeSeen');
    });

    it('loadGroupForMessage reads the group and the processed check at once', async () => {
      const g = group('a');
      await store.commit({
        conversations: [g].map(grouped),
        processed: { groupId: g.groupId, digest: 'd1', at: at() },
      });
      expect(await store.loadGroupForMessage(g.groupId, 'd1')).toEqual({
        group: { ...g, version: 1 },
        processed: true,
      });
      expect(await store.loadGroupForMessage(g.groupId, 'd2')).toMatchObject({ processed: false });
      expect(await store.loadGroupForMessage(group('b').groupId, 'd1')).toBeUndefined();
    });

    it('skips the state exactly at the held version; any other version reads everything', async () => {
      const epochState = bytes(5000, 7);
      const g = group('a', { epochState });
      await store.commit({
        conversations: [grouped(g), direct(session('s', { peerId: 'p1' }))],
        peers: [peer('p1')],
        processed: { groupId: g.groupId, digest: 'd1', at: at() },
      });
      const full = { group: { ...g, version: 1 }, processed: true };
      // At the held version: no state, no epoch part, the flag; everything else as read.
      expect(await store.loadGroupForMessage(g.groupId, 'd1', 1)).toEqual({
        group: { ...g, version: 1, state: new Uint8Array(0), epochState: undefined },
        processed: true,
        stateSkipped: true,
      });
      for (const held of [undefined, 0, 2]) {
        expect(await store.loadGroupForMessage(g.groupId, 'd1', held)).toEqual(full);
      }
      const held = await store.loadForMessage(groupId('s'), 'd1', { digest: 'e1', now: at() }, 1);
      expect(held).toEqual({
        session: { ...session('s', { peerId: 'p1' }), version: 1, state: new Uint8Array(0) },
        processed: false,
        peer: peer('p1'),
        envelopeSeen: false,
        stateSkipped: true,
      });
      expect(await store.loadForMessage(groupId('s'), 'd1', undefined, 7)).toEqual({
        session: { ...session('s', { peerId: 'p1' }), version: 1 },
        processed: false,
        peer: peer('p1'),
      });
      // A commit still compare-and-sets on the version; the next load at the old one reads it all.
      const live = bytes(300, 9);
      await store.commit({
        conversations: [grouped({ ...g, version: 1, state: live, epochStateUnchanged: true })],
      });
      expect(await store.loadGroupForMessage(g.groupId, 'd1', 1)).toEqual({
        group: { ...g, state: live, version: 2 },
        processed: true,
      });
    });
  });
}

export function describeDedupe(ctx: StoreSuiteContext): void {
  describe('dedupe and replay cache', () => {
    let store: RelayStore;
    beforeEach(() => {
      store = ctx.store;
    });

    it('records processed digests and prunes them after 7 days', async () => {
      await store.commit({ processed: { groupId: groupId('g1'), digest: 'd1', at: at() } });
      expect(await store.hasProcessed(groupId('g1'), 'd1')).toBe(true);
      expect(await store.hasProcessed(groupId('g1'), 'd2')).toBe(false);
      expect(await store.hasProcessed(groupId('g2'), 'd1')).toBe(false);
      await store.prune(at(7 * DAY));
      expect(await store.hasProcessed(groupId('g1'), 'd1')).toBe(true);
      await store.prune(at(7 * DAY + 1));
      expect(await store.hasProcessed(groupId('g1'), 'd1')).toBe(false);
    });

    it('answers envelopes until they expire and prunes expired ones', async () => {
      await store.commit({ envelope: { digest: 'e1', expiresAt: at(100) } });
      expect(await store.hasEnvelope('e1', at(100))).toBe(true);
      expect(await store.hasEnvelope('e1', at(101))).toBe(false);
      expect(await store.hasEnvelope('e2', at())).toBe(false);
      await store.prune(at(100));
      expect(await store.hasEnvelope('e1', at(50))).toBe(true);
      await store.prune(at(101));
      expect(await store.hasEnvelope('e1', at(50))).toBe(false);
    });

    it('answers welcomes seen since a time and prunes them after 7 days', async () => {
      await store.commit({ welcome: { digest: 'w1', at: at(10) } });
      expect(await store.hasWelcome('w1', at(10))).toBe(true);
      expect(await store.hasWelcome('w1', at(11))).toBe(false);
      await store.prune(at(10 + 7 * DAY + 1));
      expect(await store.hasWelcome('w1', at(0))).toBe(false);
    });
  });
}

export function describeMessageSenders(ctx: StoreSuiteContext): void {
  const { commitSession } = ctx;
  describe('message sender index (PROTOCOL.md §8 checks)', () => {
    let store: RelayStore;
    beforeEach(() => {
      store = ctx.store;
    });

    const entry = (tag: string, messageId: string, sender: string, offset = 0): MessageSenderRecord => ({
      groupId: groupId(tag),
      messageId,
      sender,
      at: at(offset),
    });

    it('answers the senders of known ids per conversation; the first entry for an id wins', async () => {
      await commitSession(session('g1'), {
        messageSenders: [entry('g1', 'm1', 'alice'), entry('g2', 'm1', 'bob')],
      });
      await commitSession(session('g1', { version: 1 }), {
        messageSenders: [entry('g1', 'm1', 'mallory')],
      });
      expect(await store.messageSenders(groupId('g1'), ['m1', 'unknown'])).toEqual(
        new Map([['m1', 'alice']]),
      );
      expect(await store.messageSenders(groupId('g2'), ['m1'])).toEqual(new Map([['m1', 'bob']]));
      expect(await store.messageSenders(groupId('g1'), [])).toEqual(new Map());
    });

    it('writes nothing when the commit is stale', async () => {
      await commitSession(session('g1'));
      await expect(
        commitSession(session('g1', { version: 0 }), { messageSenders: [entry('g1', 'm1', 'alice')] }),
      ).rejects.toBeInstanceOf(StaleStateError);
      expect(await store.messageSenders(groupId('g1'), ['m1'])).toEqual(new Map());
    });

    it(`keeps the newest ${MESSAGE_SENDERS_PER_CONVERSATION} ids of a conversation, through either write path`, async () => {
      const many = Array.from({ length: MESSAGE_SENDERS_PER_CONVERSATION + 2 }, (_, i) =>
        entry('g1', `m${i}`, 'alice'),
      );
      await commitSession(session('g1'), { messageSenders: [...many, entry('g2', 'other', 'bob')] });
      const known = async (ids: string[]) =>
        [...(await store.messageSenders(groupId('g1'), ids)).keys()].sort();
      expect(await known(['m0', 'm1', 'm2', `m${MESSAGE_SENDERS_PER_CONVERSATION + 1}`])).toEqual(
        [`m${MESSAGE_SENDERS_PER_CONVERSATION + 1}`, 'm2'].sort(),
      );
      // An update of the stored row with one outbox row: Postgres writes it as one statement.
      await commitSession(session('g1', { version: 1 }), {
        outbox: [outbox('o1')],
        processed: { groupId: groupId('g1'), digest: 'd1', at: at() },
        messageSenders: [entry('g1', 'new1', 'alice'), entry('g1', 'new2', 'alice')],
      });
      expect(await known(['m2', 'm3', 'm4', 'new1', 'new2'])).toEqual(['m4', 'new1', 'new2']);
      expect(await store.messageSenders(groupId('g2'), ['other'])).toEqual(new Map([['other', 'bob']]));
    });

    it('prunes entries after 7 days and deletes them with their conversation', async () => {
      await commitSession(session('g1'), {
        messageSenders: [entry('g1', 'old', 'alice'), entry('g1', 'new', 'alice', DAY)],
      });
      await commitSession(session('g2'), { messageSenders: [entry('g2', 'm', 'bob', DAY)] });
      await store.prune(at(7 * DAY + 1));
      expect([...(await store.messageSenders(groupId('g1'), ['old', 'new'])).keys()]).toEqual(['new']);
      await store.commit({ deleteConversations: [groupId('g2')] });
      expect(await store.messageSenders(groupId('g2'), ['m'])).toEqual(new Map());
    });
  });
}

export function describeParkedInbound(ctx: StoreSuiteContext): void {
  describe('parked inbound messages', () => {
    let store: RelayStore;
    beforeEach(() => {
      store = ctx.store;
    });

    const parked = (id: string, seed = 1) => ({
      id,
      topic: `relay/v1/inbox/${id}`,
      payload: bytes(40, seed),
      arrivedAt: at(seed),
    });

    it('lists in the order parked, with a limit, and deletes by id', async () => {
      await store.parkInbound(parked('c', 3));
      await store.parkInbound({ ...parked('a', 1), payload: allByteValues() });
      await store.parkInbound(parked('b', 2));
      const listed = await store.listParkedInbound();
      expect(listed).toEqual([
        parked('c', 3),
        { ...parked('a', 1), payload: allByteValues() },
        parked('b', 2),
      ]);
      expect(isPlainBytes(listed[0]!.payload)).toBe(true);
      expect((await store.listParkedInbound(1)).map((p) => p.id)).toEqual(['c']);
      await store.deleteParkedInbound('a');
      await store.deleteParkedInbound('missing');
      await store.parkInbound(parked('d', 4));
      expect((await store.listParkedInbound()).map((p) => p.id)).toEqual(['c', 'b', 'd']);
    });
  });
}
