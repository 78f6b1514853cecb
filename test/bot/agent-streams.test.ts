/**
 * Streams (coalescing, final text, failure), typing (rate limit, automatic), the detached run's
 * durable marker and the renewable time limit (the start-up end of interrupted replies:
 * open-replies.test.ts). The fixtures are agent-fixtures.ts.
 */
import { jest } from '@jest/globals';
import {
  Bot,
  BotRuntime,
  MemoryDataStore,
  OnCommand,
  STREAM_FAILED_NOTE,
  StreamPacer,
  TOMBSTONE,
  decodeOpenReply,
  openReplyPrefix,
  type PostTarget,
} from '../../framework/bot/index.js';
import type { ReceivedMessage } from '../../framework/relay/client.js';
import type { ContentInput } from '../../framework/relay/content.js';
import { ALICE, collector, textMessage } from './helpers.js';
import { poster, setup, type Posted } from './agent-fixtures.js';

describe('streams and detached runs', () => {
  test('the message commits at the first part; parts, final text, marker and session follow in order', async () => {
    const { bot, rt, store, c, handle, posted } = setup();
    await handle(textMessage('/stream', { id: 'q1' }));
    // handle() returned: the client commits now, with the reply so far, the session and the marker.
    expect(c.replies).toEqual([{ content: 'before', replyTo: 'q1' }]);
    const markers = await store.listConversationData(openReplyPrefix('Agent'));
    expect(markers).toHaveLength(1);
    expect(decodeOpenReply(markers[0]!.json)).toEqual({
      to: { kind: 'direct', id: ALICE },
      replyTo: 'q1',
      // This process's start: a replica's cleanup leaves a marker of the current start alone.
      boot: expect.any(String),
    });
    expect(store.get('session:Agent:' + ALICE)).toBe('{"n":1}');
    bot.stream.push('Hel');
    bot.stream.push('lo');
    await new Promise((r) => setTimeout(r, 300));
    bot.stream.push(' world');
    await new Promise((r) => setTimeout(r, 300));
    bot.stream.push('!');
    // Still buffered when the stream ends: not a part of its own, the final text carries it.
    bot.stream.end();
    await rt.stop();
    const types = posted.map((p) => p.content.type ?? 'text');
    expect(types).toEqual(['stream', 'stream', 'text', 'text', 'typing']);
    const [p0, p1, final, after, closing] = posted.map((p) => p.content) as Array<Record<string, unknown>>;
    expect(p0).toMatchObject({ id: bot.streamed, seq: 0, content: 'Hello', replyTo: 'q1' });
    expect(p1).toMatchObject({ id: bot.streamed, seq: 1, content: ' world' });
    expect(final).toEqual({ type: 'text', id: bot.streamed, content: 'Hello world!', replyTo: 'q1' });
    expect(after).toMatchObject({ content: 'after', replyTo: 'q1' });
    expect(closing).toEqual({ type: 'typing', state: 'stop', content: '' });
    // The first part names the stream in the marker; the handler's last reply deletes it and saves
    // the session in the same commit, so no crash can follow an answered run with "interrupted".
    expect(decodeOpenReply(posted[0]!.data[0]!.json)?.stream).toBe(bot.streamed);
    expect(posted[4]!.data).toEqual([]);
    expect(posted[3]!.data).toEqual(
      expect.arrayContaining([
        { conversationId: markers[0]!.conversationId, json: TOMBSTONE },
        { conversationId: 'session:Agent:' + ALICE, json: '{"n":2}' },
      ]),
    );
    expect(decodeOpenReply(store.get(markers[0]!.conversationId)!)).toBeUndefined();
  });

  test('a stream whose iterable throws ends with a final text saying so, and the error reaches @OnError', async () => {
    const { bot, rt, handle, posted } = setup();
    await handle(textMessage('/stream', { id: 'q2' }));
    bot.stream.push('partial');
    await new Promise((r) => setTimeout(r, 50));
    bot.stream.fail(new Error('model went away'));
    await rt.stop();
    const texts = posted.filter((p) => (p.content.type ?? 'text') === 'text').map((p) => p.content);
    expect(texts[0]).toMatchObject({ type: 'text', content: `partial\n\n${STREAM_FAILED_NOTE}` });
    expect(texts[1]).toMatchObject({ content: 'failed: model went away', replyTo: 'q2' });
    expect((bot.errors[0] as Error).message).toBe('model went away');
  });

  test('a streaming handler outlives the time limit while parts keep coming, and not after they stop', async () => {
    const { bot, rt, handle, posted } = setup({ handlerTimeoutMs: 200 });
    await handle(textMessage('/stream', { id: 'q3' }));
    for (let i = 0; i < 6; i++) {
      bot.stream.push(`${i}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    bot.stream.end();
    await rt.stop();
    expect(bot.errors).toEqual([]);
    expect(posted.find((p) => p.content.type === 'text')?.content.content).toBe('012345');

    const again = setup({ handlerTimeoutMs: 200 });
    await again.handle(textMessage('/stream', { id: 'q4' }));
    again.bot.stream.push('stalled');
    await new Promise((r) => setTimeout(r, 500));
    again.bot.stream.end();
    await again.rt.stop();
    const finals = again.posted
      .filter((p) => (p.content.type ?? 'text') === 'text')
      .map((p) => p.content.content);
    expect(finals).toContain(`stalled\n\n${STREAM_FAILED_NOTE}`);
    expect(finals).toContain('failed: handler did not finish within 200 ms');
  });

  test('a stream stopped at the time limit gets one final text: the handler ending later sends no second one', async () => {
    const { bot, rt, handle, posted } = setup({ handlerTimeoutMs: 200 });
    await handle(textMessage('/stream', { id: 'q5' }));
    bot.stream.push('late');
    await new Promise((r) => setTimeout(r, 500));
    // The time limit ended the stream as failed; the iterable ends only now.
    bot.stream.end();
    await rt.stop();
    // The abandoned handler is not waited for; give what it still does the time to show.
    await new Promise((r) => setTimeout(r, 100));
    const parts = posted.filter((p) => p.content.type === 'stream');
    expect(parts.map((p) => p.content.content)).toEqual(['late']);
    const finals = posted.filter(
      (p) => (p.content.type ?? 'text') === 'text' && p.content.id === parts[0]!.content.id,
    );
    expect(finals.map((p) => p.content.content)).toEqual([`late\n\n${STREAM_FAILED_NOTE}`]);
  });

  test('nothing is sent after the detach until the client reports the message committed', async () => {
    const { rt, store, c, posted } = setup();
    let commit: (() => void) | undefined;
    const deps = {
      ...c.deps,
      post: poster(store).post,
      afterCommit: (_m: ReceivedMessage, run: () => void) => void (commit = run),
    };
    const sent: Posted[] = [];
    deps.post = async (to, content, data) => void sent.push({ to, content, data });
    await rt.handle(textMessage('/typing', { id: 't0' }), c.reply, deps, store.transaction());
    await new Promise((r) => setTimeout(r, 100));
    expect(commit).toBeDefined();
    expect(sent).toEqual([]);
    commit!();
    await rt.stop();
    expect(sent.map((p) => p.content.type ?? 'text')).toEqual(['typing', 'text', 'typing']);
    expect(posted).toEqual([]);
  });

  test('stop() does not wait forever on a run whose commit event never comes; nothing is sent', async () => {
    const { bot, rt, store, c } = setup();
    const sent: Posted[] = [];
    const deps = {
      ...c.deps,
      post: async (to: PostTarget, content: ContentInput, data: Posted['data']) =>
        void sent.push({ to, content, data }),
      afterCommit: () => undefined,
    };
    await rt.handle(textMessage('/typing', { id: 't9' }), c.reply, deps, store.transaction());
    await rt.stop();
    expect(sent).toEqual([]);
    expect((bot.errors[0] as Error).message).toMatch(/stopped before the message was committed/);
  });

  test('ctx.typing() sends at most one typing start per 3 s per conversation, and detaches', async () => {
    const { rt, c, handle, posted } = setup();
    await handle(textMessage('/typing', { id: 't1' }));
    await rt.stop();
    expect(c.raw).toEqual([]);
    expect(posted.map((p) => p.content)).toEqual([
      { type: 'typing', state: 'start', content: '' },
      expect.objectContaining({ content: 'done', replyTo: 't1' }),
      { type: 'typing', state: 'stop', content: '' },
    ]);
  });

  test('automatic typing starts when a handler runs past afterMs; off, it never does', async () => {
    @Bot({ name: 'Slow' })
    class Slow {
      @OnCommand('slow')
      async slow(): Promise<string> {
        await new Promise((r) => setTimeout(r, 150));
        return 'slow answer';
      }
    }
    for (const typing of [{ afterMs: 50, everyMs: 3000 }, false as const]) {
      const rt = new BotRuntime(new Slow(), { typing });
      const store = new MemoryDataStore();
      const p = poster(store);
      const c = collector();
      await rt.handle(
        textMessage('/slow', { id: 's1' }),
        c.reply,
        { ...c.deps, post: p.post },
        store.transaction(),
      );
      await rt.stop();
      if (typing) {
        expect(c.raw).toEqual([]);
        expect(p.posted.map((x) => x.content.type ?? 'text')).toEqual(['typing', 'text', 'typing']);
      } else {
        expect(c.replies).toEqual([{ content: 'slow answer', replyTo: 's1' }]);
        expect(p.posted).toEqual([]);
      }
    }
  });
});

describe('StreamPacer', () => {
  test('parts arriving every 10 ms go out at most 4 per second, in seq order, nothing lost', async () => {
    jest.useFakeTimers();
    try {
      const sent: Array<{ at: number; seq: number; text: string }> = [];
      const pacer = new StreamPacer(async (text, seq) => {
        sent.push({ at: Date.now(), seq, text });
      });
      const start = Date.now();
      let all = '';
      for (let i = 0; i < 200; i++) {
        const part = `${i % 10}`;
        all += part;
        pacer.add(part);
        await jest.advanceTimersByTimeAsync(10);
      }
      await pacer.finish();
      expect(sent.map((s) => s.seq)).toEqual(sent.map((_, i) => i));
      for (let i = 1; i < sent.length; i++) expect(sent[i]!.at - sent[i - 1]!.at).toBeGreaterThanOrEqual(250);
      // 2 s of input: at most 4 per second (+1 for the first, sent at once).
      expect(sent.length).toBeLessThanOrEqual(9);
      expect(sent.length).toBeGreaterThanOrEqual(7);
      expect(sent[0]!.at).toBe(start);
      expect(all.startsWith(sent.map((s) => s.text).join(''))).toBe(true);
    } finally {
      jest.useRealTimers();
    }
  });

  test('a part that cannot be sent fails the next add()', async () => {
    jest.useFakeTimers();
    try {
      const pacer = new StreamPacer(() => Promise.reject(new Error('broker gone')));
      pacer.add('a');
      await jest.advanceTimersByTimeAsync(1);
      expect(() => pacer.add('b')).toThrow('broker gone');
      await expect(pacer.finish()).rejects.toThrow('broker gone');
    } finally {
      jest.useRealTimers();
    }
  });
});

describe('replies interrupted by a crash', () => {
  test('a stream final (whole or failed) marks the run answered in the same commit', async () => {
    const { bot, rt, handle, posted } = setup();
    await handle(textMessage('/stream', { id: 'q6' }));
    bot.stream.push('all');
    await new Promise((r) => setTimeout(r, 50));
    bot.stream.end();
    await rt.stop();
    const final = posted.find((p) => p.content.type === 'text' && p.content.id === bot.streamed)!;
    expect(final.data.map((d) => decodeOpenReply(d.json))).toEqual([
      { to: { kind: 'direct', id: ALICE }, replyTo: 'q6', answered: true, boot: expect.any(String) },
    ]);
  });
});
