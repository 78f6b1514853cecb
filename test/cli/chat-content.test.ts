/**
 * What the chat shows for each PROTOCOL.md §8 content type, and its commands about messages and
 * bots, against a fake client (no broker): numbering, streams on a pipe and on a terminal, typing
 * and its expiry, reactions/edits/deletes naming their message, tasks and /cancel, actions and
 * /choose, /profile and completions. test/cli/chat-agent.test.ts runs them for real.
 */
import { jest } from '@jest/globals';
import { EventEmitter } from 'eventemitter3';
import { Writable } from 'node:stream';
import { profileLines, sizeText } from '../../cli/chat/content-lines.js';
import { completeLine } from '../../cli/chat/profiles.js';
import { MessageRefs } from '../../cli/chat/refs.js';
import { ChatSession, type ChatClient } from '../../cli/chat/session.js';
import { TerminalLines } from '../../cli/chat/terminal.js';
import type {
  AppContent,
  ContentInput,
  Profile,
  RelayClientEvents,
  UserIdHex,
} from '../../framework/relay/index.js';

const ME = 'a'.repeat(32) as UserIdHex;
const BOT = 'b'.repeat(32) as UserIdHex;
const CAROL = 'c'.repeat(32) as UserIdHex;
const GID = '1'.repeat(64);

class FakeClient extends EventEmitter<RelayClientEvents> {
  readonly userId = ME;
  readonly sent: Array<{ to: string; content: string | ContentInput }> = [];
  profile: Profile | undefined;
  private n = 0;

  async send(to: string, content: string | ContentInput) {
    this.sent.push({ to, content });
    return { id: `mine-${++this.n}` };
  }
  async sendToGroup(to: string, content: string | ContentInput) {
    return this.send(to, content);
  }
  async verifyPeer(userId: string) {
    return { userId, powBits: 8, displayName: 'Agent', ...(this.profile ? { profile: this.profile } : {}) };
  }
  async group() {
    return undefined;
  }
  async groups() {
    return [];
  }
}

function setUp(options: { terminal?: boolean } = {}) {
  const client = new FakeClient();
  const out: string[] = [];
  const live: string[] = [];
  const session = new ChatSession(
    client as unknown as ChatClient,
    [BOT],
    (l) => out.push(l),
    options.terminal ? { live: (key, line) => live.push(`${key.slice(-3)} ${line}`) } : {},
  );
  session.attach();
  const from = (content: AppContent, sender: UserIdHex = BOT, group = false) =>
    client.emit('message', {
      from: sender,
      conversation: group
        ? { kind: 'group', id: GID, groupId: GID, topicId: '2'.repeat(32), name: 'team' }
        : { kind: 'direct', id: sender, groupId: GID },
      content,
      receivedAt: 0 as never,
    } as never);
  const run = async (...lines: string[]) => {
    for (const l of lines) session.line(l);
    await session.idle();
  };
  return { client, out, live, session, from, run };
}

const text = (content: string, id?: string): AppContent => ({ type: 'text', content, ...(id ? { id } : {}) });

test('messages are numbered; unknown types show their text; edits, deletes and reactions name the message', () => {
  const { out, from } = setUp();
  from(text('teh answer', 'm1'));
  from({ type: 'poll', content: 'a poll, as text', id: 'p1' });
  from({ type: 'edit', content: 'the answer', replyTo: 'm1' });
  from({ type: 'reaction', content: '👍', replyTo: 'p1' });
  from({ type: 'reaction', content: '👍', replyTo: 'p1', remove: true });
  from({ type: 'reaction', content: 'ok', replyTo: 'unknown' });
  from({ type: 'delete', content: '', replyTo: 'm1' });
  from({ type: 'edit', content: 'x', replyTo: 'nope' });
  expect(out).toEqual([
    '(1) [bbbbbbbb] teh answer',
    '(2) [bbbbbbbb] a poll, as text',
    '(1) [bbbbbbbb] edited: the answer (was "teh answer")',
    '[bbbbbbbb] reacted 👍 to (2) "a poll, as text"',
    '[bbbbbbbb] took back 👍 on (2) "a poll, as text"',
    '[bbbbbbbb] reacted ok to a message not shown here',
    '[bbbbbbbb] deleted (1) "the answer"',
    '[bbbbbbbb] edited a message not shown here: x',
  ]);
});

test("an edit or delete naming another sender's message does not touch it", () => {
  const { out, from } = setUp();
  from(text('mine', 'm1'), CAROL, true);
  from({ type: 'edit', content: 'forged', replyTo: 'm1' }, BOT, true);
  from({ type: 'reaction', content: '👀', replyTo: 'm1' }, BOT, true);
  expect(out).toEqual([
    '(1) [#team cccccccc] mine',
    '[#team bbbbbbbb] edited a message not shown here: forged',
    '[#team bbbbbbbb] reacted 👀 to (1) "mine"',
  ]);
});

describe('streams', () => {
  const parts: AppContent[] = [
    { type: 'stream', id: 's1', seq: 1, content: 'upon ' },
    { type: 'stream', id: 's1', seq: 0, content: 'Once ' },
    { type: 'stream', id: 's1', seq: 1, content: 'upon ' },
    { type: 'stream', id: 's1', seq: 2, content: 'a time' },
  ];

  test('on a pipe only the final text is printed, once', () => {
    const { out, from } = setUp();
    for (const p of parts) from(p);
    expect(out).toEqual([]);
    from(text('Once upon a time.', 's1'));
    from({ type: 'stream', id: 's1', seq: 3, content: 'late' });
    expect(out).toEqual(['(1) [bbbbbbbb] Once upon a time.']);
  });

  test('on a pipe a part with done ends it, and a final text repeating it is not printed again', () => {
    const { out, from, session } = setUp();
    from({ type: 'stream', id: 's2', seq: 0, content: 'all ', done: false });
    from({ type: 'stream', id: 's2', seq: 1, content: 'done', done: true });
    from(text('all done', 's2'));
    from({ type: 'stream', id: 's3', seq: 0, content: 'cut sh' });
    session.close();
    expect(out).toEqual(['(1) [bbbbbbbb] all done', '(2) [bbbbbbbb] cut sh (stream unfinished)']);
  });

  test('on a terminal one line is rewritten in seq order, then the final text', () => {
    const { out, live, from } = setUp({ terminal: true });
    for (const p of parts) from(p);
    from(text('Once upon a time.', 's1'));
    expect(out).toEqual([]);
    expect(live).toEqual([
      '|s1 (1) [bbbbbbbb] Once upon  …',
      '|s1 (1) [bbbbbbbb] Once upon a time …',
      '|s1 (1) [bbbbbbbb] Once upon a time.',
    ]);
  });
});

describe('typing', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  test('on a pipe one line when someone starts; a message, a stop or 10 s clear it', () => {
    const { out, from, session } = setUp();
    const typing = (state: 'start' | 'stop'): AppContent => ({ type: 'typing', state, content: '' });
    from(typing('start'));
    from(typing('start'));
    expect(out).toEqual(['[bbbbbbbb] is typing…']);
    expect(session.typingNow()).toEqual([BOT]);
    from(text('hi'));
    expect(session.typingNow()).toEqual([]);
    from(typing('start'));
    from(typing('stop'));
    expect(session.typingNow()).toEqual([]);
    from(typing('start'));
    jest.advanceTimersByTime(9_000);
    from(typing('start'));
    jest.advanceTimersByTime(9_000);
    expect(session.typingNow()).toEqual([BOT]);
    jest.advanceTimersByTime(1_001);
    expect(session.typingNow()).toEqual([]);
    expect(out.filter((l) => l.includes('typing'))).toHaveLength(3);
    session.close();
  });

  test('on a terminal typing is in the prompt (onChange), not a line', () => {
    const { out, from, session } = setUp({ terminal: true });
    let changes = 0;
    session.onChange = () => (changes += 1);
    from({ type: 'typing', state: 'start', content: '' });
    expect(out).toEqual([]);
    expect(session.typingNow()).toEqual([BOT]);
    from(text('done'));
    expect(changes).toBe(2);
    session.close();
  });
});

test('tasks show their states; /cancel sends task-cancel for a running task only', async () => {
  const { out, from, run, client } = setUp();
  from({ type: 'task', id: 't1', replyTo: 'r', state: 'submitted', content: 'queued' });
  from({ type: 'task', id: 't1', replyTo: 'r', state: 'working', content: 'crunching', progress: 0.4 });
  await run('/cancel 1');
  from({ type: 'task', id: 't1', replyTo: 'r', state: 'canceled', content: '' });
  await run('/cancel 1', '/cancel 9', '/cancel');
  expect(client.sent).toEqual([{ to: BOT, content: { type: 'task-cancel', replyTo: 't1', content: '' } }]);
  expect(out).toEqual([
    '(1) [bbbbbbbb] task submitted: queued  (/cancel 1 cancels it)',
    '(1) [bbbbbbbb] task working 40%: crunching',
    'asked to cancel task (1)',
    '(1) [bbbbbbbb] task canceled',
    'task (1) is canceled already',
    'no message (9) here; the numbers are the (n) before each message',
    'usage: /cancel <n> (the number of a task)',
  ]);
});

test('actions are numbered choices; /choose answers the newest here or a named one', async () => {
  const { out, from, run, client } = setUp();
  await run('/choose 1');
  const actions = [
    { id: 'red', label: 'Red' },
    { id: 'blue', label: 'Blue' },
  ];
  from({ type: 'actions', id: 'a1', content: 'Pick a colour', actions });
  from({ type: 'actions', id: 'a2', content: 'Again?', actions: [{ id: 'yes', label: 'Yes' }] });
  await run('/choose 1', '/choose 1 2', '/choose 1 3', '/choose 2 2');
  expect(client.sent.map((s) => s.content)).toEqual([
    { type: 'action', replyTo: 'a2', content: 'yes' },
    { type: 'action', replyTo: 'a1', content: 'blue' },
  ]);
  expect(out).toEqual([
    'nothing to choose from in this conversation yet',
    '(1) [bbbbbbbb] Pick a colour',
    '    1. Red',
    '    2. Blue',
    '    answer with /choose <number> (or /choose 1 <number> later)',
    '(2) [bbbbbbbb] Again?',
    '    1. Yes',
    '    answer with /choose <number> (or /choose 2 <number> later)',
    'chose "Yes" on (2) "Again?"',
    'chose "Blue" on (1) "Pick a colour"',
    '(1) offers choices 1 to 2',
    '(2) offers choices 1 to 1',
  ]);
});

test('/react, /edit and /delete send content naming the message; only your own can be edited', async () => {
  const { out, from, run, client } = setUp();
  from(text('hello', 'b1'));
  await run(
    'hi bot',
    '/react 1 👍',
    '/unreact 1 👍',
    '/edit 2  hi  there ',
    '/edit 1 no',
    '/delete 2',
    '/react 2',
  );
  expect(client.sent.map((s) => s.content)).toEqual([
    'hi bot',
    { type: 'reaction', replyTo: 'b1', content: '👍' },
    { type: 'reaction', replyTo: 'b1', content: '👍', remove: true },
    { type: 'edit', replyTo: 'mine-1', content: 'hi  there' },
    { type: 'delete', replyTo: 'mine-1', content: '' },
  ]);
  expect(out).toEqual([
    '(1) [bbbbbbbb] hello',
    '(2) sent',
    'reacted 👍 to (1) "hello"',
    'took back 👍 on (1) "hello"',
    '(2) edited',
    '(1) is not your message; you can only edit your own (the "(n) sent" ones)',
    '(2) deleted',
    'usage: /react <n> <emoji or word>',
  ]);
  from({ type: 'reaction', content: '❤️', replyTo: 'mine-1' });
  expect(out.at(-1)).toBe('[bbbbbbbb] reacted ❤️ to (2) (deleted)');
});

test('an attachment shows its name, size and type', () => {
  const { out, from } = setUp();
  from({
    type: 'attachment',
    name: 'report.pdf',
    mime: 'application/pdf',
    size: 1536,
    sha256: '0'.repeat(64),
    source: { kind: 'inline', data: new Uint8Array(1536) },
    content: '',
    id: 'f1',
  });
  expect(out).toEqual(['(1) [bbbbbbbb] attachment report.pdf (1.5 KiB, application/pdf)']);
  expect(sizeText(12)).toBe('12 bytes');
});

test('/profile prints the signed profile; its commands complete on a terminal', async () => {
  const { out, run, client, session } = setUp();
  await run('/profile');
  client.profile = {
    bot: true,
    description: 'Does\nthings',
    commands: [{ name: 'story', args: '<topic…>', description: 'tells a story' }, { name: 'members' }],
  };
  await run(`/profile ${BOT.slice(0, 6)}`, '/profile zz');
  expect(out).toEqual([
    `${BOT} "Agent" publishes no profile`,
    `${BOT} "Agent": a bot (signed profile)`,
    '  Does \u21b5 things',
    '  /story <topic…>  tells a story',
    '  /members',
    expect.stringContaining('"zz" is not a user id'),
  ]);
  expect(session.complete('/st')).toEqual([['/story'], '/st']);
  expect(session.complete('//m')).toEqual([['//members'], '//m']);
  expect(session.complete('/pro')).toEqual([['/profile'], '/pro']);
  expect(session.complete('hello /s')).toEqual([[], 'hello /s']);
  expect(completeLine('/', ['/a'], ['b'])).toEqual([['/a', '/b'], '/']);
  expect(profileLines(BOT, { profile: { bot: false, commands: [] } })).toEqual([
    `${BOT}: not a bot (signed profile)`,
    '  no commands',
  ]);
});

test('references are bounded: the oldest numbers are forgotten', () => {
  const refs = new MessageRefs(3);
  const c = { kind: 'direct' as const, id: BOT };
  for (let i = 0; i < 5; i++) refs.add({ conversation: c, from: BOT, id: `m${i}`, text: `${i}` });
  expect(refs.get(1)).toBeUndefined();
  expect(refs.find(c, BOT, 'm0')).toBeUndefined();
  expect(refs.get(5)?.text).toBe('4');
  expect(refs.find(c, BOT, 'm4')?.n).toBe(5);
});

describe('on a terminal', () => {
  function terminal(columns: number) {
    let written = '';
    const output = new Writable({
      write: (chunk: Buffer, _e, cb) => {
        written += chunk.toString();
        cb();
      },
    });
    Object.assign(output, { columns });
    const lines = new TerminalLines(output, () => undefined);
    const take = (): string => {
      const w = written;
      written = '';
      return w;
    };
    return { lines, take };
  }
  const UP = (n: number): string => `\u001b[${n}A`;
  const CLEAR_DOWN = '\u001b[0J';

  test('a live line is rewritten in place, over as many rows as it took', () => {
    const { lines, take } = terminal(10);
    lines.live('s', 'Once upon');
    expect(take()).not.toContain(UP(1));
    lines.live('s', 'Once upon a time');
    expect(take()).toContain(`${UP(1)}${CLEAR_DOWN}Once upon a time\n`);
    lines.live('s', 'Once upon a time.');
    expect(take()).toContain(`${UP(2)}${CLEAR_DOWN}Once upon a time.\n`);
  });

  test('a line printed in between makes the next part a new line, not a rewrite of that line', () => {
    const { lines, take } = terminal(80);
    lines.live('s', 'part');
    lines.print('(2) [cccccccc] hi');
    take();
    lines.live('s', 'part two');
    expect(take()).not.toContain('\u001b[1A');
    lines.live('t', 'other stream');
    expect(take()).not.toContain('\u001b[1A');
  });
});
