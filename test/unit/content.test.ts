/**
 * PROTOCOL.md §8 content types: every bound accepts at it and rejects just past it, on decode
 * (CodecError: a receiver drops it as `content`) and on encode (ArgumentError: we never send it);
 * unknown types and missing `content` degrade as §8 says; group padding works for every type.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import {
  decodeContent,
  encodeContent,
  isEphemeralContent,
  isKnownContent,
  senderBoundTarget,
  type AppContent,
} from '../../framework/relay/content.js';
import { tryDecodeContent } from '../../framework/relay/content.js';
import { ArgumentError, CodecError } from '../../framework/relay/errors.js';

const json = (o: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(o));
const decodeJson = (o: unknown): AppContent => decodeContent(json(o));
const rejects = (o: unknown): void => expect(() => decodeJson(o)).toThrow(CodecError);
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
const sha = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const id = (n: number): string => 'i'.repeat(n);

/** One valid message of each known type, as typed content. */
const samples: AppContent[] = [
  { type: 'text', content: 'hello', id: 'm1' },
  { type: 'reaction', content: '👍', replyTo: 'm1' },
  { type: 'reaction', content: 'yes', replyTo: 'm1', remove: true, id: 'r2' },
  { type: 'edit', content: 'hello!', replyTo: 'm1', id: 'e1' },
  { type: 'delete', content: '', replyTo: 'm1' },
  { type: 'delete', content: '(deleted)', replyTo: 'm1' },
  { type: 'typing', state: 'start', content: '' },
  { type: 'typing', state: 'stop', content: '' },
  { type: 'stream', id: 's1', seq: 0, content: 'Once ' },
  { type: 'stream', id: 's1', seq: 1, content: 'upon', done: true, replyTo: 'm1' },
  { type: 'task', id: 't1', replyTo: 'm1', state: 'working', content: 'fetching', progress: 0.5 },
  { type: 'task', id: 't1', replyTo: 'm1', state: 'completed', content: 'done: 42' },
  { type: 'task-cancel', replyTo: 't1', content: '' },
  {
    type: 'actions',
    content: 'Deploy?',
    id: 'a1',
    actions: [
      { id: 'yes', label: 'Yes' },
      { id: 'no', label: 'No' },
    ],
  },
  { type: 'action', replyTo: 'a1', content: 'yes' },
  {
    type: 'attachment',
    name: 'a.txt',
    mime: 'text/plain',
    size: 3,
    sha256: sha(new Uint8Array([1, 2, 3])),
    source: { kind: 'inline', data: new Uint8Array([1, 2, 3]) },
    content: '📎 a.txt',
  },
  {
    type: 'attachment',
    name: 'big.bin',
    mime: 'application/octet-stream',
    size: 1_000_000,
    sha256: 'ab'.repeat(32),
    source: {
      kind: 'url',
      url: 'https://files.example/x',
      key: new Uint8Array(32),
      nonce: new Uint8Array(12),
    },
    content: '',
  },
  { type: 'x-poll', content: 'a poll (your client cannot show it)' },
];

describe('every §8 type round-trips', () => {
  test.each(samples.map((s) => [s.type, s] as const))('%s', (_type, c) => {
    expect(decodeContent(encodeContent(c))).toEqual(c);
    const padded = encodeContent(c, { padTo: 256 });
    expect(padded.length % 256).toBe(0);
    expect(decodeContent(padded)).toEqual(c);
  });

  test('known types narrow with isKnownContent; an unknown one keeps its type and text', () => {
    const unknown = decodeJson({ type: 'x-poll', content: 'vote', question: 'which?' });
    expect(unknown).toEqual({ type: 'x-poll', content: 'vote' });
    expect(isKnownContent(unknown)).toBe(false);
    const c = decodeJson({ type: 'task', id: 't', reply_to: 'm', state: 'failed', content: 'x' });
    if (!isKnownContent(c) || c.type !== 'task') throw new Error('expected a task');
    expect(c.state).toBe('failed');
  });

  test('types without content read as "" (shown as nothing) and encode without it', () => {
    expect(decodeJson({ type: 'typing', state: 'start' }).content).toBe('');
    expect(decodeJson({ type: 'task-cancel', reply_to: 't' }).content).toBe('');
    const wire = JSON.parse(
      new TextDecoder().decode(encodeContent({ type: 'typing', state: 'stop', content: '' })),
    );
    expect(wire).toEqual({ type: 'typing', state: 'stop' });
  });

  test('text keeps its old wire form and old decoded shape', () => {
    expect(new TextDecoder().decode(encodeContent({ content: 'hi', id: 'm', replyTo: 'r' }))).toBe(
      '{"content":"hi","id":"m","reply_to":"r"}',
    );
    expect(decodeJson({ content: 'hi', id: '' })).toEqual({ type: 'text', content: 'hi', id: '' });
    expect(decodeJson({ content: 'hi', type: '' })).toEqual({ type: '', content: 'hi' });
  });

  test('ephemeral and sender-bound helpers', () => {
    expect(isEphemeralContent({ type: 'typing', state: 'start', content: '' })).toBe(true);
    expect(isEphemeralContent({ type: 'text', content: 'x' })).toBe(false);
    expect(senderBoundTarget({ type: 'edit', content: 'x', replyTo: 'm1' })).toBe('m1');
    expect(senderBoundTarget({ type: 'delete', content: '', replyTo: 'm2' })).toBe('m2');
    expect(senderBoundTarget({ type: 'stream', id: 's', seq: 0, content: '' })).toBe('s');
    expect(senderBoundTarget({ type: 'reaction', content: '👍', replyTo: 'm1' })).toBeUndefined();
  });

  test('padding works for every type (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...samples), fc.string({ maxLength: 300 }), (c, text) => {
        const withText = c.type === 'reaction' ? c : { ...c, content: text };
        const padded = encodeContent(withText, { padTo: 256 });
        expect(padded.length % 256).toBe(0);
        expect(decodeContent(padded)).toEqual(decodeContent(encodeContent(withText)));
      }),
    );
  });
});

describe('bounds: accepted at the bound, rejected just past it', () => {
  test('id and reply_to ≤ 128 characters', () => {
    expect(decodeJson({ content: 'x', id: id(128), reply_to: id(128) }).id).toBe(id(128));
    rejects({ content: 'x', id: id(129) });
    rejects({ content: 'x', reply_to: id(129) });
    expect(decodeJson({ type: 'stream', id: id(128), seq: 0, content: '' }).id).toBe(id(128));
    rejects({ type: 'stream', id: id(129), seq: 0, content: '' });
    expect(() => encodeContent({ content: 'x', id: id(129) })).toThrow(ArgumentError);
  });

  test('type ≤ 64 characters', () => {
    expect(decodeJson({ content: 'x', type: 't'.repeat(64) }).type).toBe('t'.repeat(64));
    rejects({ content: 'x', type: 't'.repeat(65) });
    expect(() => encodeContent({ content: 'x', type: 't'.repeat(65) })).toThrow(ArgumentError);
  });

  test('reaction content 1..32 UTF-8 bytes (bytes, not characters)', () => {
    const at = 'é'.repeat(16); // 32 bytes, 16 characters
    expect(decodeJson({ type: 'reaction', reply_to: 'm', content: at }).content).toBe(at);
    rejects({ type: 'reaction', reply_to: 'm', content: at + 'a' });
    rejects({ type: 'reaction', reply_to: 'm', content: '' });
    rejects({ type: 'reaction', content: '👍' });
    expect(() => encodeContent({ type: 'reaction', replyTo: 'm', content: at + 'a' })).toThrow(ArgumentError);
  });

  test('actions: 1..10 buttons with unique ids ≤ 128', () => {
    const buttons = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `b${i}`, label: `B${i}` }));
    expect(decodeJson({ type: 'actions', content: 'pick', actions: buttons(10) })).toMatchObject({
      actions: buttons(10),
    });
    rejects({ type: 'actions', content: 'pick', actions: buttons(11) });
    rejects({ type: 'actions', content: 'pick', actions: [] });
    rejects({ type: 'actions', content: 'pick', actions: [buttons(1)[0], buttons(1)[0]] });
    rejects({ type: 'actions', content: 'pick', actions: [{ id: id(129), label: 'x' }] });
    rejects({ type: 'actions', content: 'pick', actions: [{ id: 'x' }] });
    expect(() => encodeContent({ type: 'actions', content: 'p', actions: buttons(11) })).toThrow(
      ArgumentError,
    );
  });

  test('attachment inline data ≤ 64 KiB, size and sha256 matching it', () => {
    const at = new Uint8Array(64 * 1024).fill(7);
    const over = new Uint8Array(64 * 1024 + 1).fill(7);
    const inline = (data: Uint8Array, over: object = {}) => ({
      type: 'attachment',
      name: 'f',
      mime: 'application/octet-stream',
      size: data.length,
      sha256: sha(data),
      data: b64(data),
      ...over,
    });
    const ok = decodeJson(inline(at));
    expect(
      ok.type === 'attachment' && 'source' in ok && ok.source.kind === 'inline' && ok.source.data.length,
    ).toBe(65536);
    rejects(inline(over));
    rejects(inline(at, { size: at.length - 1 }));
    rejects(inline(at, { sha256: sha(over) }));
    rejects(inline(at, { sha256: sha(at).toUpperCase() }));
    rejects(inline(at, { data: b64(at).replace(/=*$/, '') + '=' })); // not canonical base64
    rejects(inline(at, { url: 'https://x.example/f' })); // both forms
    rejects({ ...inline(at), data: undefined }); // neither
  });

  test('attachment at a URL: key 32 bytes, nonce 12 bytes, base64', () => {
    const remote = (key: number, nonce: number, over: object = {}) => ({
      type: 'attachment',
      name: 'f',
      mime: 'x/y',
      size: 10,
      sha256: 'cd'.repeat(32),
      url: 'https://files.example/f',
      key: b64(new Uint8Array(key)),
      nonce: b64(new Uint8Array(nonce)),
      ...over,
    });
    expect(decodeJson(remote(32, 12))).toMatchObject({
      source: { kind: 'url', url: 'https://files.example/f' },
    });
    rejects(remote(33, 12));
    rejects(remote(31, 12));
    rejects(remote(32, 13));
    rejects(remote(32, 11));
    rejects(remote(32, 12, { url: 'not a url' }));
    rejects(remote(32, 12, { key: undefined }));
    rejects(remote(32, 12, { size: -1 }));
  });

  test('task: state from the list, progress 0..1', () => {
    const task = (over: object) => ({
      type: 'task',
      id: 't',
      reply_to: 'm',
      state: 'working',
      content: '',
      ...over,
    });
    expect(decodeJson(task({ progress: 0 }))).toMatchObject({ progress: 0 });
    expect(decodeJson(task({ progress: 1 }))).toMatchObject({ progress: 1 });
    rejects(task({ progress: 1.0000001 }));
    rejects(task({ progress: -0.0000001 }));
    rejects(task({ progress: '0.5' }));
    for (const state of ['submitted', 'working', 'input-required', 'completed', 'failed', 'canceled']) {
      expect(decodeJson(task({ state }))).toMatchObject({ state });
    }
    rejects(task({ state: 'done' }));
    rejects(task({ id: undefined }));
    rejects(task({ reply_to: undefined }));
  });

  test('stream seq is a non-negative integer', () => {
    const part = (seq: unknown) => ({ type: 'stream', id: 's', seq, content: 'x' });
    expect(decodeJson(part(0))).toMatchObject({ seq: 0 });
    expect(decodeJson(part(Number.MAX_SAFE_INTEGER))).toMatchObject({ seq: Number.MAX_SAFE_INTEGER });
    rejects(part(-1));
    rejects(part(1.5));
    rejects(part('1'));
    rejects({ type: 'stream', id: 's', seq: 0, content: 'x', done: 'yes' });
  });

  test('typing state is start or stop', () => {
    rejects({ type: 'typing', state: 'paused' });
    rejects({ type: 'typing' });
  });

  test('edit, delete, action and task-cancel need reply_to; a known type with bad fields is never shown', () => {
    rejects({ type: 'edit', content: 'x' });
    rejects({ type: 'delete' });
    rejects({ type: 'action', content: 'yes' });
    rejects({ type: 'task-cancel' });
    rejects({ type: 'delete', reply_to: 'm', content: 5 });
    expect(tryDecodeContent(json({ type: 'edit', content: 'x' }))).toBeUndefined();
  });
});
