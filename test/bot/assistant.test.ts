/**
 * The assistant bot's logic with a context double (ctx.stream collects the parts it is given,
 * ctx.typing counts) and the fake model server behind real HTTP: what it streams, the history it
 * keeps and sends, its refusal without a server (the failure sentences and the typing indicator:
 * assistant-parts.test.ts). It does not depend on the framework's streaming implementation.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import AssistantBotDefault, {
  AssistantBot,
  mentionedQuestion,
  NOT_CONFIGURED,
  type AssistantBotOptions,
  type AssistantSession,
} from '../../bots/assistant/index.js';
import { ConfigError, readBotMetadata, type BotContext } from '../../index.js';
import { FakeModelServer, type FakeReply } from '../support/fake-model-server.js';
import { ALICE, GROUP_ID, SELF_ID, TOPIC_ID, textMessage } from './helpers.js';

let server: FakeModelServer;

beforeAll(async () => {
  server = await FakeModelServer.start();
});

afterAll(async () => {
  await server?.close();
});

afterEach(() => {
  const pending = server.pending;
  server.reset();
  expect(pending).toBe(0);
});

/** What one handler call did through its context. */
interface Call {
  /** The parts of each ctx.stream call. */
  streams: string[][];
  /** 'typing' and 'stream' in the order they happened. */
  events: string[];
  result: string | undefined;
}

/** A conversation: its session as the runtime would keep it (JSON, saved after a handler that succeeded). */
class Conversation {
  stored: string | undefined;
  logs: string[] = [];

  constructor(readonly kind: 'direct' | 'group' = 'direct') {}

  get history(): AssistantSession['history'] {
    return this.stored === undefined ? undefined : (JSON.parse(this.stored) as AssistantSession).history;
  }

  context(
    text: string,
    call: Call,
    opts: { command?: string; args?: Record<string, unknown>; type?: string } = {},
  ): BotContext<never, AssistantSession> {
    let value: AssistantSession | undefined;
    const session = {
      get: async (): Promise<AssistantSession> => {
        value ??= this.stored === undefined ? {} : (JSON.parse(this.stored) as AssistantSession);
        return value;
      },
      set: (v: AssistantSession): void => {
        value = v;
      },
    };
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done): void => {
        this.logs.push(chunk.toString());
        done();
      },
    });
    const message = textMessage(text, { kind: this.kind, ...(opts.type ? { type: opts.type } : {}) });
    const ctx = {
      update: { kind: 'message', message },
      text,
      command: opts.command,
      args: opts.args ?? {},
      argsText: '',
      match: undefined,
      sender: ALICE,
      conversation:
        this.kind === 'direct'
          ? { kind: 'direct', id: ALICE }
          : { kind: 'group', id: GROUP_ID, groupId: GROUP_ID, topicId: TOPIC_ID },
      group: undefined,
      message,
      bot: { name: 'assistant', userId: SELF_ID, commands: [] },
      log: pino({ level: 'debug' }, sink),
      session,
      signal: new AbortController().signal,
      reply: () => undefined,
      // Committed only after a handler that succeeded, as the runtime does.
      commit: () => {
        if (value !== undefined) this.stored = JSON.stringify(value);
      },
      typing: async (): Promise<void> => {
        call.events.push('typing');
      },
      stream: async (parts: AsyncIterable<string>): Promise<string> => {
        call.events.push('stream');
        const got: string[] = [];
        for await (const p of parts) got.push(p);
        call.streams.push(got);
        return 'stream-id';
      },
    };
    return ctx as unknown as BotContext<never, AssistantSession>;
  }

  /** Sends `text` to the bot as a message (plain, or /ask and /reset when it starts with them). */
  async send(bot: AssistantBot, text: string, opts: { type?: string } = {}): Promise<Call> {
    const call: Call = { streams: [], events: [], result: undefined };
    const ask = /^\/ask(?:@\w+)? ?(.*)$/s.exec(text);
    let ctx;
    if (ask) {
      ctx = this.context(text, call, { command: 'ask', args: { question: ask[1] } });
      call.result = await bot.ask(ctx as never);
    } else if (text.startsWith('/reset')) {
      ctx = this.context(text, call, { command: 'reset' });
      call.result = await bot.reset(ctx as never);
    } else {
      ctx = this.context(text, call, opts);
      call.result = await bot.message(ctx as never);
    }
    (ctx as unknown as { commit(): void }).commit();
    return call;
  }
}

const ENV = (): Record<string, string> => ({
  RELAY_ASSISTANT_URL: server.baseUrl,
  RELAY_ASSISTANT_MODEL: 'fake',
});

function assistant(options: AssistantBotOptions = {}): AssistantBot {
  return new AssistantBot({ systemPrompt: 'Be brief.', ...options }, { env: ENV() });
}

const answer = (...chunks: string[]): FakeReply => ({ kind: 'answer', chunks });
/** The messages the model got in request `i`. */
const sentMessages = (i: number): unknown => server.requests[i]!.body!.messages;

test('the default export is the AssistantBot class, with /ask, /research (a task) and /reset', () => {
  expect(AssistantBotDefault).toBe(AssistantBot);
  const meta = readBotMetadata(AssistantBot);
  expect(meta.bot?.name).toBe('assistant');
  expect(meta.commands.map((c) => c.name)).toEqual(['ask', 'research', 'reset']);
  expect(meta.commands.find((c) => c.name === 'research')?.task).toEqual({ onRestart: 'resume' });
  expect(meta.messages).toHaveLength(1);
});

test('a 1:1 message is answered by streaming the model parts, typing first', async () => {
  const bot = assistant();
  const chat = new Conversation();
  server.reply(answer('Par', 'is', '.'));
  const call = await chat.send(bot, 'What is the capital of France?');
  expect(call.result).toBeUndefined();
  expect(call.streams).toEqual([['Par', 'is', '.']]);
  expect(call.events[0]).toBe('typing');
  expect(call.events).toContain('stream');
  expect(sentMessages(0)).toEqual([
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'What is the capital of France?' },
  ]);
  expect(chat.history).toEqual([{ question: 'What is the capital of France?', answer: 'Paris.' }]);
});

test('/ask sends the history, and the history keeps the last maxTurns turns', async () => {
  const bot = assistant({ maxTurns: 2 });
  const chat = new Conversation();
  server.reply(answer('A1'), answer('A2'), answer('A3'), answer('A4'));
  await chat.send(bot, '/ask Q1');
  await chat.send(bot, '/ask Q2');
  expect(sentMessages(1)).toEqual([
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Q1' },
    { role: 'assistant', content: 'A1' },
    { role: 'user', content: 'Q2' },
  ]);
  await chat.send(bot, '/ask Q3');
  await chat.send(bot, 'Q4');
  expect(sentMessages(3)).toEqual([
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Q2' },
    { role: 'assistant', content: 'A2' },
    { role: 'user', content: 'Q3' },
    { role: 'assistant', content: 'A3' },
    { role: 'user', content: 'Q4' },
  ]);
  expect(chat.history).toEqual([
    { question: 'Q3', answer: 'A3' },
    { question: 'Q4', answer: 'A4' },
  ]);
});

test('the history keeps whole turns within maxHistoryChars, dropping the oldest', async () => {
  const bot = assistant({ maxHistoryChars: 25 });
  const chat = new Conversation();
  server.reply(answer('a'.repeat(10)), answer('b'.repeat(10)), answer('c'.repeat(30)));
  await chat.send(bot, 'q1');
  await chat.send(bot, 'q2');
  // 12 + 12 characters fit in 25.
  expect(chat.history).toEqual([
    { question: 'q1', answer: 'a'.repeat(10) },
    { question: 'q2', answer: 'b'.repeat(10) },
  ]);
  await chat.send(bot, 'q3');
  // A turn longer than the whole budget is not kept, and takes none of the older ones with it.
  expect(chat.history).toEqual([]);
});

test('/reset forgets the history; the next question goes alone', async () => {
  const bot = assistant();
  const chat = new Conversation();
  server.reply(answer('A1'), answer('A2'), answer('A3'));
  await chat.send(bot, 'Q1');
  await chat.send(bot, 'Q2');
  expect((await chat.send(bot, '/reset')).result).toBe('forgot 2 questions');
  expect((await chat.send(bot, '/reset')).result).toBe('there was nothing to forget');
  await chat.send(bot, 'Q3');
  expect(sentMessages(2)).toEqual([
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Q3' },
  ]);
});

test('without a model server it refuses politely and calls nothing', async () => {
  const bot = new AssistantBot({}, { env: {} });
  const call = await new Conversation().send(bot, 'hello?');
  expect(call.result).toBe(NOT_CONFIGURED);
  expect(call.result).toMatch(/^no model server is configured: set RELAY_ASSISTANT_URL/);
  expect(call.streams).toEqual([]);
  expect(call.events).toEqual([]);
  expect(server.requests).toEqual([]);
});

test.each<[string, FakeReply, Partial<AssistantBotOptions>, string]>([
  [
    '401',
    { kind: 'status', status: 401 },
    {},
    'the model server refused my API key; whoever runs me should check RELAY_ASSISTANT_API_KEY',
  ],
  [
    '429',
    { kind: 'status', status: 429 },
    {},
    'the model server is busy (rate limited); try again in a minute',
  ],
  ['500', { kind: 'status', status: 500 }, {}, 'the model server failed; try again later'],
  [
    '404',
    { kind: 'status', status: 404 },
    {},
    'the model server rejected the request (HTTP 404); whoever runs me should check the model name (RELAY_ASSISTANT_MODEL)',
  ],
  [
    'a stall',
    { kind: 'stall' },
    { firstTokenTimeoutMs: 200 },
    'the model server did not answer in time; try again later',
  ],
  [
    'a malformed chunk',
    { kind: 'raw', pieces: ['data: {oops\n\n'] },
    {},
    'the model server sent an answer I could not read',
  ],
])(
  'a model failure before the first token (%s) is one short reply, no stream, no history',
  async (_, reply, options, text) => {
    const bot = assistant(options);
    const chat = new Conversation();
    server.reply(reply);
    const call = await chat.send(bot, 'hello?');
    expect(call.result).toBe(text);
    expect(call.streams).toEqual([]);
    expect(chat.history).toBeUndefined();
  },
);

test('an unreachable server is one short reply', async () => {
  const gone = await FakeModelServer.start();
  await gone.close();
  const bot = new AssistantBot(
    {},
    { env: { RELAY_ASSISTANT_URL: gone.baseUrl, RELAY_ASSISTANT_MODEL: 'm' } },
  );
  expect((await new Conversation().send(bot, 'hi')).result).toBe(
    'I cannot reach the model server right now; try again later',
  );
});

test('a failure mid-answer ends the stream with a note, and the turn is not kept', async () => {
  const bot = assistant({ idleTimeoutMs: 200 });
  const chat = new Conversation();
  server.reply(answer('A1'), { kind: 'stall', chunks: ['half ', 'an answer'] });
  await chat.send(bot, 'Q1');
  const call = await chat.send(bot, 'Q2');
  expect(call.result).toBeUndefined();
  expect(call.streams).toEqual([
    ['half ', 'an answer', '\n\n(answer cut short: the model server stopped answering)'],
  ]);
  expect(chat.history).toEqual([{ question: 'Q1', answer: 'A1' }]);
});

test('an answer longer than maxAnswerChars is cut with a note and stops the request', async () => {
  const bot = assistant({ maxAnswerChars: 10 });
  const chat = new Conversation();
  server.reply({ kind: 'stall', chunks: ['12345', '678', '90abc', 'never'] });
  const call = await chat.send(bot, 'count');
  expect(call.streams).toEqual([['12345', '678', '90', '\n\n(answer cut at 10 characters)']]);
  expect(chat.history).toEqual([{ question: 'count', answer: '1234567890' }]);
  // An answer of exactly maxAnswerChars is whole: no note.
  server.reply(answer('12345', '67890'));
  expect((await chat.send(bot, 'again')).streams).toEqual([['12345', '67890']]);
});

test('an empty question, a too long one and an empty answer get a usage or a short reply', async () => {
  const bot = assistant({ maxQuestionChars: 20 });
  const chat = new Conversation();
  expect((await chat.send(bot, '   ')).result).toBe('ask me something: /ask <question>, or just write it');
  expect((await chat.send(bot, 'x'.repeat(21))).result).toBe(
    'a question has at most 20 characters; this one has 21',
  );
  expect(server.requests).toEqual([]);
  server.reply(answer());
  expect((await chat.send(bot, 'say nothing')).result).toBe(
    'the model returned an empty answer; try asking differently',
  );
});

test('content that is not text (a reaction, typing) is not a question', async () => {
  const bot = assistant();
  const call = await new Conversation().send(bot, '👍', { type: 'reaction' });
  expect(call.result).toBeUndefined();
  expect(server.requests).toEqual([]);
});

describe('in a group', () => {
  test('plain text is answered only when it mentions the bot; the mention is not sent', async () => {
    const bot = assistant();
    const group = new Conversation('group');
    const chatter = await group.send(bot, 'lunch at noon?');
    expect(chatter.result).toBeUndefined();
    expect(chatter.events).toEqual([]);
    expect(server.requests).toEqual([]);
    server.reply(answer('4'), answer('yes'));
    const call = await group.send(bot, '@Assistant, what is 2+2?');
    expect(call.streams).toEqual([['4']]);
    expect(sentMessages(0)).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'what is 2+2?' },
    ]);
    // /ask works as in a direct chat, and the group shares one history.
    await group.send(bot, '/ask@assistant sure?');
    expect(group.history).toEqual([
      { question: 'what is 2+2?', answer: '4' },
      { question: 'sure?', answer: 'yes' },
    ]);
  });

  test('an empty mention gets the group usage', async () => {
    const call = await new Conversation('group').send(assistant(), '@assistant');
    expect(call.result).toBe('ask me something: /ask@assistant <question> or @assistant <question>');
  });
});

test('mentionedQuestion: @name or @userid as a word, any case, removed from the question', () => {
  const self = { name: 'assistant', userId: SELF_ID };
  expect(mentionedQuestion('@assistant hi', self)).toBe('hi');
  expect(mentionedQuestion('hi @ASSISTANT: how are you', self)).toBe('hi how are you');
  expect(mentionedQuestion(`@${SELF_ID} hi`, self)).toBe('hi');
  expect(mentionedQuestion('@assistant-two hi', self)).toBeUndefined();
  expect(mentionedQuestion('mail me@assistant.example', self)).toBeUndefined();
  expect(mentionedQuestion('assistant hi', self)).toBeUndefined();
  expect(mentionedQuestion('@assistant first line\n  second line', self)).toBe('first line\n  second line');
});

test('the API key appears neither in replies nor in logs', async () => {
  const bot = new AssistantBot({}, { env: { ...ENV(), RELAY_ASSISTANT_API_KEY: 'sk-very-secret' } });
  const chat = new Conversation();
  server.reply({ kind: 'status', status: 401, body: '{"error":{"message":"invalid key"}}' });
  const call = await chat.send(bot, 'hi');
  expect(server.requests[0]!.authorization).toBe('Bearer sk-very-secret');
  expect(chat.logs.join('')).toContain('invalid key');
  expect(chat.logs.join('')).not.toContain('sk-very-secret');
  expect(call.result).not.toContain('sk-very-secret');
  expect(JSON.stringify(bot.server)).not.toContain('sk-very-secret');
});

test('bad options fail at construction with the fix', () => {
  expect(() => new AssistantBot({ maxTurn: 3 } as AssistantBotOptions, { env: {} })).toThrow(ConfigError);
  expect(() => new AssistantBot({ maxTurn: 3 } as AssistantBotOptions, { env: {} })).toThrow(
    /no option "maxTurn"\. Fix: use only/,
  );
  expect(() => new AssistantBot({ maxTurns: -1 }, { env: {} })).toThrow(
    'the assistant option maxTurns must be a whole number of at least 0, got -1',
  );
  expect(() => new AssistantBot({ typingEveryMs: 1000 }, { env: {} })).toThrow(
    /typingEveryMs .* at least 3000/,
  );
  expect(() => new AssistantBot({ temperature: 5 }, { env: {} })).toThrow(
    /temperature must be a number from 0 to 2/,
  );
  expect(() => new AssistantBot({ apiKey: 42 } as unknown as AssistantBotOptions, { env: {} })).toThrow(
    'the assistant option apiKey must be text, got "number"',
  );
  expect(() => new AssistantBot({}, { env: { OPENAI_BASE_URL: 'http://h/v1' } })).toThrow(
    /OPENAI_BASE_URL\) but no model/,
  );
});
