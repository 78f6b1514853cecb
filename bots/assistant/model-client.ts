/**
 * A client for the chat-completions API that OpenAI-compatible servers share (llama.cpp, Ollama,
 * vLLM, LocalAI, hosted APIs), on Node's fetch. stream() yields the answer's text as the server
 * produces it (server-sent events); complete() asks for the whole answer at once.
 *
 * Timeouts: the first token must arrive within firstTokenTimeoutMs of the request (that covers the
 * connection, the headers and the model's thinking), and after it the stream may fall silent for at
 * most idleTimeoutMs. The caller's signal (the handler's ctx.signal) cancels everything; its reason
 * is rethrown as it is, since the caller already knows why.
 *
 * The API key goes only into the Authorization header; errors and logs never carry it.
 */
import { ModelError, reasonForStatus } from './errors.js';
import type { ModelServer } from './server-config.js';
import { SseDecoder, type SseEvent } from './sse.js';

export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant';
  readonly content: string;
}

export interface ModelClientOptions {
  /** From the request to the first token of the answer (default 60 s). */
  firstTokenTimeoutMs?: number;
  /** Longest silence after the first token (default 30 s). */
  idleTimeoutMs?: number;
  /** Sent as `temperature` when set. */
  temperature?: number;
  /** Sent as `max_tokens` when set. */
  maxTokens?: number;
  /** Tests and proxies may pass their own. */
  fetch?: typeof fetch;
}

export interface ChatCallOptions {
  signal?: AbortSignal;
}

export const DEFAULT_FIRST_TOKEN_TIMEOUT_MS = 60_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
/** A line longer than this in the event stream is not a chat-completions chunk. */
const MAX_PENDING_LINE = 1024 * 1024;
/** Whole (non-streamed) bodies and error bodies are read up to these sizes. */
const MAX_JSON_BODY = 4 * 1024 * 1024;
const MAX_ERROR_BODY = 4096;

/** Aborts its signal with a timeout ModelError when the current deadline passes; re-armed per phase. */
class Deadline {
  readonly controller = new AbortController();
  timedOut = false;
  private timer: NodeJS.Timeout | undefined;

  arm(ms: number, what: string): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort(new ModelError('timeout', `the model server sent ${what} within ${ms} ms`));
    }, ms);
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}

interface ParsedChunk {
  content: string | undefined;
  finished: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

function malformed(what: string): ModelError {
  return new ModelError('malformed', `the model server sent ${what}`);
}

/** An error object the server put in the stream or body: `{"error": {"message": …}}` or a string. */
function errorObjectMessage(error: unknown): string {
  if (typeof error === 'string') return error.slice(0, 200);
  if (isObject(error) && typeof error.message === 'string') return error.message.slice(0, 200);
  return 'an error without a message';
}

/** One `data:` payload of a streamed answer. Chunks without choices (usage, keep-alives) carry nothing. */
export function parseStreamChunk(data: string): ParsedChunk {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    throw malformed('a chunk that is not JSON');
  }
  if (!isObject(value)) throw malformed('a chunk that is not a JSON object');
  if (value.error !== undefined) {
    throw new ModelError('server', `the model server failed mid-answer: ${errorObjectMessage(value.error)}`);
  }
  if (value.choices === undefined) return { content: undefined, finished: false };
  if (!Array.isArray(value.choices)) throw malformed('a chunk whose choices is not a list');
  const choice: unknown = value.choices[0];
  if (choice === undefined) return { content: undefined, finished: false };
  if (!isObject(choice)) throw malformed('a chunk whose choice is not an object');
  const delta = choice.delta;
  if (delta !== undefined && delta !== null && !isObject(delta))
    throw malformed('a chunk whose delta is not an object');
  const content = isObject(delta) ? delta.content : undefined;
  if (content !== undefined && content !== null && typeof content !== 'string')
    throw malformed('a chunk whose content is not text');
  return {
    content: typeof content === 'string' && content !== '' ? content : undefined,
    finished: typeof choice.finish_reason === 'string',
  };
}

/** The answer text of a whole (non-streamed) chat-completions body. */
export function parseCompletion(body: string): string {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw malformed('a body that is not JSON');
  }
  if (isObject(value) && value.error !== undefined) {
    throw new ModelError('server', `the model server failed: ${errorObjectMessage(value.error)}`);
  }
  const choice: unknown = isObject(value) && Array.isArray(value.choices) ? value.choices[0] : undefined;
  const message = isObject(choice) ? choice.message : undefined;
  const content = isObject(message) ? message.content : undefined;
  if (typeof content !== 'string') throw malformed('a body without choices[0].message.content');
  return content;
}

/** Reads at most `max` bytes of a body as text; a longer body is cut (error bodies) or refused. */
async function readText(
  body: ReadableStream<Uint8Array> | null,
  max: number,
  tooLong: 'cut' | 'refuse',
): Promise<string> {
  if (body === null) return '';
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  for await (const piece of body) {
    bytes += piece.byteLength;
    if (bytes > max) {
      if (tooLong === 'refuse') throw malformed(`a body longer than ${max} bytes`);
      text += decoder.decode(piece.subarray(0, piece.byteLength - (bytes - max)));
      await body.cancel().catch(() => undefined);
      return text;
    }
    text += decoder.decode(piece, { stream: true });
  }
  return text + decoder.decode();
}

async function httpError(response: Response): Promise<ModelError> {
  let detail = '';
  try {
    const text = await readText(response.body, MAX_ERROR_BODY, 'cut');
    try {
      const parsed: unknown = JSON.parse(text);
      detail = isObject(parsed) && parsed.error !== undefined ? errorObjectMessage(parsed.error) : '';
    } catch {
      detail = text.trim().slice(0, 200);
    }
  } catch {
    // The status says enough.
  }
  const status = response.status;
  return new ModelError(
    reasonForStatus(status),
    `the model server answered HTTP ${status}${detail === '' ? '' : `: ${detail}`}`,
    { status },
  );
}

/** Why a network-level failure happened, from undici's `cause` (ECONNREFUSED, ENOTFOUND …). */
function networkCause(err: unknown): string {
  const cause = isObject(err) ? err.cause : undefined;
  if (isObject(cause) && typeof cause.code === 'string') return cause.code;
  return err instanceof Error ? err.message : String(err);
}

export class ModelClient {
  private readonly firstTokenMs: number;
  private readonly idleMs: number;
  private readonly fetch: typeof fetch;

  constructor(
    private readonly server: ModelServer,
    private readonly options: ModelClientOptions = {},
  ) {
    this.firstTokenMs = options.firstTokenTimeoutMs ?? DEFAULT_FIRST_TOKEN_TIMEOUT_MS;
    this.idleMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  /** The answer as it is written: one string per piece of text the server sends (never empty). */
  async *stream(messages: readonly ChatMessage[], call: ChatCallOptions = {}): AsyncGenerator<string, void> {
    const deadline = new Deadline();
    deadline.arm(this.firstTokenMs, 'no first token');
    let phase: 'connect' | 'read' = 'connect';
    try {
      const response = await this.post(messages, true, deadline, call.signal);
      phase = 'read';
      if (!response.ok) throw await httpError(response);
      // A server that ignores `stream` answers with the whole body: take it as one part.
      if ((response.headers.get('content-type') ?? '').includes('application/json')) {
        const text = parseCompletion(await readText(response.body, MAX_JSON_BODY, 'refuse'));
        if (text !== '') yield text;
        return;
      }
      if (response.body === null) throw malformed('no body');
      const decoder = new TextDecoder();
      const sse = new SseDecoder();
      let started = false;
      let finished = false;
      const handle = (events: SseEvent[]): { parts: string[]; done: boolean } => {
        const parts: string[] = [];
        for (const event of events) {
          if (event.data === '[DONE]') return { parts, done: true };
          const chunk = parseStreamChunk(event.data);
          if (chunk.finished) finished = true;
          if (chunk.content !== undefined) parts.push(chunk.content);
          // After the first token, anything the server sends proves it is alive.
          if (started || chunk.content !== undefined) {
            started = true;
            deadline.arm(this.idleMs, 'nothing more');
          }
        }
        return { parts, done: false };
      };
      for await (const bytes of response.body) {
        const { parts, done } = handle(sse.feed(decoder.decode(bytes, { stream: true })));
        for (const part of parts) yield part;
        if (done) return;
        if (sse.pendingLength > MAX_PENDING_LINE) throw malformed('a line longer than 1 MiB');
      }
      const { parts, done } = handle([...sse.feed(decoder.decode()), ...sse.end()]);
      for (const part of parts) yield part;
      if (!done && !finished) throw malformed('a stream that ended before [DONE]');
    } catch (err) {
      throw this.failure(err, deadline, phase, call.signal);
    } finally {
      deadline.clear();
      // Also when the consumer stopped early: closes the connection.
      deadline.controller.abort();
    }
  }

  /** The whole answer in one response (`stream: false`), within firstTokenTimeoutMs. */
  async complete(messages: readonly ChatMessage[], call: ChatCallOptions = {}): Promise<string> {
    const deadline = new Deadline();
    deadline.arm(this.firstTokenMs, 'no answer');
    let phase: 'connect' | 'read' = 'connect';
    try {
      const response = await this.post(messages, false, deadline, call.signal);
      phase = 'read';
      if (!response.ok) throw await httpError(response);
      return parseCompletion(await readText(response.body, MAX_JSON_BODY, 'refuse'));
    } catch (err) {
      throw this.failure(err, deadline, phase, call.signal);
    } finally {
      deadline.clear();
      deadline.controller.abort();
    }
  }

  private post(
    messages: readonly ChatMessage[],
    stream: boolean,
    deadline: Deadline,
    caller: AbortSignal | undefined,
  ): Promise<Response> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: stream ? 'text/event-stream' : 'application/json',
    };
    if (this.server.apiKey !== undefined) headers.authorization = `Bearer ${this.server.apiKey}`;
    const body = {
      model: this.server.model,
      messages,
      stream,
      ...(this.options.temperature !== undefined ? { temperature: this.options.temperature } : {}),
      ...(this.options.maxTokens !== undefined ? { max_tokens: this.options.maxTokens } : {}),
    };
    const signal =
      caller === undefined
        ? deadline.controller.signal
        : AbortSignal.any([caller, deadline.controller.signal]);
    return this.fetch(this.server.endpoint, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
      signal,
    });
  }

  /** The error to throw for whatever the call raised: a ModelError, or the caller's abort reason. */
  private failure(
    err: unknown,
    deadline: Deadline,
    phase: 'connect' | 'read',
    caller: AbortSignal | undefined,
  ): unknown {
    if (caller?.aborted) return caller.reason;
    if (deadline.timedOut) {
      const reason: unknown = deadline.controller.signal.reason;
      return reason instanceof ModelError ? reason : new ModelError('timeout', 'the model server timed out');
    }
    if (err instanceof ModelError) return err;
    return phase === 'connect'
      ? new ModelError('unreachable', `cannot reach the model server (${networkCause(err)})`, { cause: err })
      : new ModelError('server', `the model server broke off its answer (${networkCause(err)})`, {
          cause: err,
        });
  }
}
