/**
 * A deterministic OpenAI-compatible chat-completions server for tests, on 127.0.0.1 and a random
 * port. Each request takes the next scripted reply (reply(...) queues them); a request with nothing
 * scripted gets HTTP 500 "no reply scripted", so a test never passes on an answer it did not choose.
 * Every request is recorded (path, Authorization header, parsed body) to check what was sent.
 *
 *   const server = await FakeModelServer.start();
 *   server.reply({ kind: 'answer', chunks: ['Hel', 'lo'] });
 *   … RELAY_ASSISTANT_URL = server.baseUrl …
 *   expect(server.requests[0]!.body.messages).toEqual([…]);
 *   await server.close();
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the server does with one request. */
export type FakeReply =
  /**
   * The answer in these chunks: SSE when the request asked for `stream: true`, one JSON body
   * otherwise. `delayMs` waits before each chunk after the first, `firstDelayMs` before the first;
   * `splitBytes` writes the whole event stream in slices of that many bytes (cutting lines and
   * characters anywhere); `done: false` leaves out the final `data: [DONE]`.
   */
  | {
      kind: 'answer';
      chunks: readonly string[];
      delayMs?: number;
      firstDelayMs?: number;
      splitBytes?: number;
      done?: boolean;
      finishReason?: string | null;
    }
  /** An HTTP error with this status and body (default an OpenAI-style error object). */
  | { kind: 'status'; status: number; body?: string; headers?: Record<string, string> }
  /** Sends these chunks (maybe none), then nothing more, keeping the connection open. */
  | { kind: 'stall'; chunks?: readonly string[]; beforeHeaders?: boolean }
  /** Writes exactly these pieces as the event stream, `delayMs` apart, then ends. */
  | { kind: 'raw'; pieces: readonly string[]; delayMs?: number; contentType?: string };

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly authorization: string | undefined;
  /** The parsed JSON body (undefined if it was not JSON). */
  readonly body: { model?: unknown; messages?: unknown; stream?: unknown; [k: string]: unknown } | undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One SSE frame of a streamed chat-completions chunk. */
export function sseChunk(delta: Record<string, unknown>, finishReason: string | null = null): string {
  const chunk = {
    id: 'chatcmpl-fake',
    object: 'chat.completion.chunk',
    model: 'fake',
    choices: [{ index: 0, delta, finish_reason: finishReason }],
  };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

export const SSE_DONE = 'data: [DONE]\n\n';

export class FakeModelServer {
  readonly requests: RecordedRequest[] = [];
  private readonly queue: FakeReply[] = [];

  private constructor(
    private readonly server: Server,
    /** e.g. http://127.0.0.1:40123/v1, what RELAY_ASSISTANT_URL takes. */
    readonly baseUrl: string,
  ) {}

  static async start(): Promise<FakeModelServer> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const fake = new FakeModelServer(server, `http://127.0.0.1:${port}/v1`);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      void fake.handle(req, res).catch(() => res.destroy());
    });
    return fake;
  }

  /** Queues replies for the next requests, in order. */
  reply(...replies: FakeReply[]): void {
    this.queue.push(...replies);
  }

  /** Replies scripted but not used yet. */
  get pending(): number {
    return this.queue.length;
  }

  /** Resolves once `count` requests have arrived (polling; tests bound it with their timeout). */
  async waitForRequests(count: number): Promise<void> {
    while (this.requests.length < count) await sleep(10);
  }

  /** Forgets the scripted replies and the recorded requests (between tests). */
  reset(): void {
    this.queue.length = 0;
    this.requests.length = 0;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    let body: RecordedRequest['body'];
    try {
      body = JSON.parse(raw) as RecordedRequest['body'];
    } catch {
      body = undefined;
    }
    this.requests.push({
      method: req.method ?? '',
      path: req.url ?? '',
      authorization: req.headers.authorization,
      body,
    });
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      return json(res, 404, { error: { message: `no route ${req.method} ${req.url}` } });
    }
    const reply = this.queue.shift();
    if (reply === undefined) return json(res, 500, { error: { message: 'no reply scripted' } });
    const stream = body?.stream === true;
    switch (reply.kind) {
      case 'status':
        res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
        res.end(reply.body ?? JSON.stringify({ error: { message: `scripted ${reply.status}` } }));
        return;
      case 'answer':
        if (!stream) {
          return json(res, 200, {
            id: 'chatcmpl-fake',
            object: 'chat.completion',
            choices: [
              {
                index: 0,
                message: { role: 'assistant', content: reply.chunks.join('') },
                finish_reason: 'stop',
              },
            ],
          });
        }
        return this.streamAnswer(res, reply);
      case 'stall':
        if (reply.beforeHeaders) return; // never answers
        startEvents(res);
        res.write(sseChunk({ role: 'assistant' }));
        for (const c of reply.chunks ?? []) res.write(sseChunk({ content: c }));
        return; // and never ends
      case 'raw':
        res.writeHead(200, { 'content-type': reply.contentType ?? 'text/event-stream' });
        for (const [i, piece] of reply.pieces.entries()) {
          if (i > 0 && reply.delayMs) await sleep(reply.delayMs);
          if (res.destroyed) return;
          res.write(piece);
        }
        res.end();
        return;
    }
  }

  private async streamAnswer(
    res: ServerResponse,
    reply: Extract<FakeReply, { kind: 'answer' }>,
  ): Promise<void> {
    startEvents(res);
    const frames = [
      sseChunk({ role: 'assistant' }),
      ...reply.chunks.map((c) => sseChunk({ content: c })),
      sseChunk({}, reply.finishReason === undefined ? 'stop' : reply.finishReason),
      ...(reply.done === false ? [] : [SSE_DONE]),
    ];
    if (reply.splitBytes !== undefined) {
      const bytes = Buffer.from(frames.join(''));
      for (let at = 0; at < bytes.length; at += reply.splitBytes) {
        if (res.destroyed) return;
        res.write(bytes.subarray(at, at + reply.splitBytes));
        await new Promise((r) => setImmediate(r));
      }
      res.end();
      return;
    }
    res.write(frames[0]);
    for (const [i, frame] of frames.slice(1).entries()) {
      const isChunk = i < reply.chunks.length;
      const wait = i === 0 ? reply.firstDelayMs : isChunk ? reply.delayMs : undefined;
      if (wait) await sleep(wait);
      if (res.destroyed) return;
      res.write(frame);
    }
    res.end();
  }
}

function startEvents(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();
}

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  return Buffer.concat(parts).toString('utf8');
}
