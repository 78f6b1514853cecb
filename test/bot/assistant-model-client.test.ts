/**
 * The assistant's model client over real HTTP against the fake model server: streamed chunks,
 * chunk boundaries anywhere, delays, every HTTP error, both timeouts, malformed streams; and the
 * event-stream decoder and server configuration on their own.
 */
import {
  chatCompletionsUrl,
  describeServer,
  ModelClient,
  ModelError,
  resolveModelServer,
  SseDecoder,
  type ChatMessage,
  type ModelErrorReason,
  type ModelServer,
} from '../../bots/assistant/index.js';
import { FakeModelServer, SSE_DONE, sseChunk } from '../support/fake-model-server.js';

let server: FakeModelServer;

beforeAll(async () => {
  server = await FakeModelServer.start();
});

afterAll(async () => {
  await server?.close();
});

afterEach(() => {
  // Every scripted reply was asked for: a test whose call never reached the server fails here.
  const pending = server.pending;
  server.reset();
  expect(pending).toBe(0);
});

const QUESTION: ChatMessage[] = [{ role: 'user', content: 'hi' }];

function client(options: ConstructorParameters<typeof ModelClient>[1] = {}, apiKey?: string): ModelClient {
  const s: ModelServer = { endpoint: `${server.baseUrl}/chat/completions`, model: 'fake-model', apiKey };
  return new ModelClient(s, options);
}

async function collect(parts: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const p of parts) out.push(p);
  return out;
}

/** The ModelError a call fails with (fails the test if it succeeds or throws something else). */
async function failure(run: () => Promise<unknown>): Promise<ModelError> {
  try {
    await run();
  } catch (err) {
    expect(err).toBeInstanceOf(ModelError);
    return err as ModelError;
  }
  throw new Error('the call succeeded');
}

describe('ModelClient.stream', () => {
  test('yields the chunks in order and sends model, messages, stream and the key', async () => {
    server.reply({ kind: 'answer', chunks: ['Hel', 'lo, ', 'world'] });
    const parts = await collect(client({ temperature: 0.2, maxTokens: 50 }, 'sk-test').stream(QUESTION));
    expect(parts).toEqual(['Hel', 'lo, ', 'world']);
    expect(server.requests).toHaveLength(1);
    const [req] = server.requests;
    expect(req!.path).toBe('/v1/chat/completions');
    expect(req!.authorization).toBe('Bearer sk-test');
    expect(req!.body).toEqual({
      model: 'fake-model',
      messages: QUESTION,
      stream: true,
      temperature: 0.2,
      max_tokens: 50,
    });
  });

  test('sends no Authorization header without a key', async () => {
    server.reply({ kind: 'answer', chunks: ['ok'] });
    await collect(client().stream(QUESTION));
    expect(server.requests[0]!.authorization).toBeUndefined();
  });

  test('reassembles events cut at any byte, multi-byte characters included', async () => {
    const answer = ['Grüße ', '— 你好 ', '🙂 done'];
    for (const splitBytes of [1, 3, 7]) {
      server.reply({ kind: 'answer', chunks: answer, splitBytes });
      expect((await collect(client().stream(QUESTION))).join('')).toBe(answer.join(''));
    }
  });

  test('chunks with delays between them arrive whole (idle timeout longer than the delays)', async () => {
    server.reply({ kind: 'answer', chunks: ['a', 'b', 'c'], firstDelayMs: 50, delayMs: 50 });
    expect(await collect(client({ idleTimeoutMs: 5000 }).stream(QUESTION))).toEqual(['a', 'b', 'c']);
  });

  test('CRLF line ends, comments, role-only and usage chunks are handled', async () => {
    const frame = (s: string): string => s.replace(/\n/g, '\r\n');
    server.reply({
      kind: 'raw',
      pieces: [
        ': keep-alive\r\n\r\n',
        frame(sseChunk({ role: 'assistant' })),
        frame(sseChunk({ content: 'one' })).slice(0, 20),
        frame(sseChunk({ content: 'one' })).slice(20),
        'data: {"choices":[],"usage":{"total_tokens":3}}\r\n\r',
        '\n',
        frame(sseChunk({ content: ' two' }, 'stop')),
        frame(SSE_DONE),
      ],
      delayMs: 5,
    });
    expect(await collect(client().stream(QUESTION))).toEqual(['one', ' two']);
  });

  test('a stream without [DONE] but with a finish_reason is complete', async () => {
    server.reply({ kind: 'answer', chunks: ['x'], done: false });
    expect(await collect(client().stream(QUESTION))).toEqual(['x']);
  });

  test('a server that ignores stream: true and answers JSON gives the whole answer as one part', async () => {
    server.reply({
      kind: 'raw',
      contentType: 'application/json',
      pieces: [JSON.stringify({ choices: [{ message: { role: 'assistant', content: 'whole' } }] })],
    });
    expect(await collect(client().stream(QUESTION))).toEqual(['whole']);
  });

  test.each<[number, ModelErrorReason]>([
    [401, 'unauthorized'],
    [403, 'unauthorized'],
    [429, 'rate-limited'],
    [500, 'server'],
    [503, 'server'],
    [404, 'rejected'],
    [400, 'rejected'],
  ])('HTTP %i is a ModelError %s with the status and the server message', async (status, reason) => {
    server.reply({
      kind: 'status',
      status,
      body: JSON.stringify({ error: { message: 'nope from server' } }),
    });
    const err = await failure(() => collect(client({}, 'sk-secret').stream(QUESTION)));
    expect(err.reason).toBe(reason);
    // A code of its own, like every other typed error: MODEL_ and the reason.
    expect(err.code).toBe(`MODEL_${reason.toUpperCase().replace('-', '_')}`);
    expect(err.status).toBe(status);
    expect(err.message).toBe(`the model server answered HTTP ${status}: nope from server`);
    expect(err.message).not.toContain('sk-secret');
  });

  test('a non-JSON error body is quoted, cut to 200 characters', async () => {
    server.reply({ kind: 'status', status: 502, body: `bad gateway ${'x'.repeat(1000)}` });
    const err = await failure(() => collect(client().stream(QUESTION)));
    expect(err.reason).toBe('server');
    expect(err.message).toBe(`the model server answered HTTP 502: bad gateway ${'x'.repeat(188)}`);
  });

  test('no first token in time: timeout', async () => {
    server.reply({ kind: 'stall' });
    const err = await failure(() => collect(client({ firstTokenTimeoutMs: 200 }).stream(QUESTION)));
    expect(err.reason).toBe('timeout');
    expect(err.message).toBe('the model server sent no first token within 200 ms');
  });

  test('no response headers in time: timeout', async () => {
    server.reply({ kind: 'stall', beforeHeaders: true });
    const err = await failure(() => collect(client({ firstTokenTimeoutMs: 200 }).stream(QUESTION)));
    expect(err.reason).toBe('timeout');
  });

  test('silence after some tokens: timeout after the parts already yielded', async () => {
    server.reply({ kind: 'stall', chunks: ['partial ', 'answer'] });
    const got: string[] = [];
    const err = await failure(async () => {
      for await (const p of client({ idleTimeoutMs: 200 }).stream(QUESTION)) got.push(p);
    });
    expect(got).toEqual(['partial ', 'answer']);
    expect(err.reason).toBe('timeout');
    expect(err.message).toBe('the model server sent nothing more within 200 ms');
  });

  test('a delay longer than the idle timeout between chunks: timeout', async () => {
    server.reply({ kind: 'answer', chunks: ['a', 'b'], delayMs: 1000 });
    const err = await failure(() => collect(client({ idleTimeoutMs: 100 }).stream(QUESTION)));
    expect(err.reason).toBe('timeout');
  });

  test.each([
    ['not JSON', 'data: {oops\n\n', 'the model server sent a chunk that is not JSON'],
    ['not an object', 'data: 42\n\n', 'the model server sent a chunk that is not a JSON object'],
    [
      'choices not a list',
      'data: {"choices":{}}\n\n',
      'the model server sent a chunk whose choices is not a list',
    ],
    [
      'content not text',
      'data: {"choices":[{"delta":{"content":7}}]}\n\n',
      'the model server sent a chunk whose content is not text',
    ],
  ])('a malformed chunk (%s) is a ModelError malformed', async (_, piece, message) => {
    server.reply({ kind: 'raw', pieces: [sseChunk({ content: 'ok' }), piece, SSE_DONE] });
    const err = await failure(() => collect(client().stream(QUESTION)));
    expect(err.reason).toBe('malformed');
    expect(err.message).toBe(message);
  });

  test('a stream that ends before [DONE] and without finish_reason is malformed', async () => {
    server.reply({ kind: 'raw', pieces: [sseChunk({ content: 'cut' })] });
    const err = await failure(() => collect(client().stream(QUESTION)));
    expect(err.reason).toBe('malformed');
    expect(err.message).toBe('the model server sent a stream that ended before [DONE]');
  });

  test('an error object inside the stream is a server failure', async () => {
    server.reply({
      kind: 'raw',
      pieces: [sseChunk({ content: 'a' }), 'data: {"error":{"message":"overloaded"}}\n\n'],
    });
    const err = await failure(() => collect(client().stream(QUESTION)));
    expect(err.reason).toBe('server');
    expect(err.message).toBe('the model server failed mid-answer: overloaded');
  });

  test('a refused connection is unreachable', async () => {
    const gone = await FakeModelServer.start();
    const url = `${gone.baseUrl}/chat/completions`;
    await gone.close();
    const c = new ModelClient({ endpoint: url, model: 'm', apiKey: undefined });
    const err = await failure(() => collect(c.stream(QUESTION)));
    expect(err.reason).toBe('unreachable');
    expect(err.message).toBe('cannot reach the model server (ECONNREFUSED)');
  });

  test("the caller's abort is rethrown as its own reason, not as a ModelError", async () => {
    server.reply({ kind: 'stall' });
    const caller = new AbortController();
    const parts = client().stream(QUESTION, { signal: caller.signal });
    const pending = parts.next();
    await server.waitForRequests(1);
    const reason = new Error('handler timed out');
    caller.abort(reason);
    await expect(pending).rejects.toBe(reason);
  });

  test('stopping early closes the request', async () => {
    server.reply({ kind: 'stall', chunks: ['first'] });
    const parts = client().stream(QUESTION);
    expect(await parts.next()).toEqual({ value: 'first', done: false });
    await parts.return(undefined);
    // The next scripted reply is served on a fresh request: the stalled one did not block the server.
    server.reply({ kind: 'answer', chunks: ['next'] });
    expect(await collect(client().stream(QUESTION))).toEqual(['next']);
  });
});

describe('ModelClient.complete', () => {
  test('returns the whole answer of a non-streamed request', async () => {
    server.reply({ kind: 'answer', chunks: ['all ', 'at once'] });
    expect(await client().complete(QUESTION)).toBe('all at once');
    expect(server.requests[0]!.body!.stream).toBe(false);
  });

  test('maps HTTP errors and a stall like stream()', async () => {
    server.reply({ kind: 'status', status: 429 }, { kind: 'stall', beforeHeaders: true });
    expect((await failure(() => client().complete(QUESTION))).reason).toBe('rate-limited');
    expect((await failure(() => client({ firstTokenTimeoutMs: 200 }).complete(QUESTION))).reason).toBe(
      'timeout',
    );
  });
});

describe('SseDecoder', () => {
  const STREAM =
    'event: message\r\ndata: one\r\ndata: two\r\n\r\n: comment\n\ndata:three\r\rdata: four\nid: 5\nretry: 10\n\n';
  const EXPECTED = [
    { event: 'message', data: 'one\ntwo' },
    { event: undefined, data: 'three' },
    { event: undefined, data: 'four' },
  ];

  test('decodes LF, CR and CRLF line ends, multi-line data, comments and other fields', () => {
    const d = new SseDecoder();
    expect([...d.feed(STREAM), ...d.end()]).toEqual(EXPECTED);
  });

  test('gives the same events for every way of cutting the stream in two or three', () => {
    for (let i = 0; i <= STREAM.length; i++) {
      for (let j = i; j <= STREAM.length; j += 5) {
        const d = new SseDecoder();
        const events = [
          ...d.feed(STREAM.slice(0, i)),
          ...d.feed(STREAM.slice(i, j)),
          ...d.feed(STREAM.slice(j)),
          ...d.end(),
        ];
        expect(events).toEqual(EXPECTED);
      }
    }
  });

  test('a last event without its blank line is still given at the end', () => {
    const d = new SseDecoder();
    expect(d.feed('data: last')).toEqual([]);
    expect(d.pendingLength).toBe(10);
    expect(d.end()).toEqual([{ event: undefined, data: 'last' }]);
  });
});

describe('model server configuration', () => {
  test('RELAY_ASSISTANT_* wins over bot.options, which wins over OPENAI_*', () => {
    const env = {
      RELAY_ASSISTANT_URL: 'http://relay.example/v1',
      RELAY_ASSISTANT_MODEL: 'relay-model',
      RELAY_ASSISTANT_API_KEY: 'relay-key',
      OPENAI_BASE_URL: 'http://openai.example/v1',
      OPENAI_API_KEY: 'openai-key',
    };
    const options = { url: 'http://options.example/v1/', model: 'options-model', apiKey: 'options-key' };
    expect(resolveModelServer(options, env)).toEqual({
      endpoint: 'http://relay.example/v1/chat/completions',
      model: 'relay-model',
      apiKey: 'relay-key',
    });
    expect(resolveModelServer(options, { OPENAI_BASE_URL: 'http://o/v1', OPENAI_API_KEY: 'k' })).toEqual({
      endpoint: 'http://options.example/v1/chat/completions',
      model: 'options-model',
      apiKey: 'options-key',
    });
    expect(
      resolveModelServer({ model: 'm' }, { OPENAI_BASE_URL: 'https://o/v1', OPENAI_API_KEY: 'k' }),
    ).toEqual({
      endpoint: 'https://o/v1/chat/completions',
      model: 'm',
      apiKey: 'k',
    });
  });

  test('no URL anywhere is "not configured"; a blank one too', () => {
    expect(resolveModelServer({}, {})).toBeUndefined();
    expect(resolveModelServer({ model: 'm' }, { RELAY_ASSISTANT_URL: '  ' })).toBeUndefined();
  });

  test('a URL without a model, or not http(s), is a ConfigError naming the fix', () => {
    expect(() => resolveModelServer({}, { RELAY_ASSISTANT_URL: 'http://x/v1' })).toThrow(
      /no model\. Fix: set RELAY_ASSISTANT_MODEL or bot.options.model/,
    );
    expect(() => resolveModelServer({ url: 'ftp://x', model: 'm' }, {})).toThrow(
      /bot.options.url must be an http:\/\/ or https:\/\/ URL/,
    );
    expect(() => resolveModelServer({ url: 'not a url', model: 'm' }, {})).toThrow(/is not a URL\. Fix:/);
  });

  test('a full endpoint URL is kept; describeServer hides the key and credentials', () => {
    expect(chatCompletionsUrl('http://h:1/v1/chat/completions', 'x')).toBe('http://h:1/v1/chat/completions');
    const described = describeServer({
      endpoint: 'http://user:pw@h/v1/chat/completions',
      model: 'm',
      apiKey: 'sk-secret',
    });
    expect(described).toEqual({ endpoint: 'http://h/v1/chat/completions', model: 'm', apiKey: 'set' });
    expect(JSON.stringify(described)).not.toContain('sk-secret');
  });
});
