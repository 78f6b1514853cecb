/**
 * Where the model server is: URL, model and key from the bot's options or the environment.
 *
 * Precedence, highest first: RELAY_ASSISTANT_URL / _MODEL / _API_KEY (the environment overrides the
 * config file, as everywhere in relay-bot), then bot.options url / model / apiKey, then the OpenAI
 * SDK's own OPENAI_BASE_URL / OPENAI_API_KEY as a fallback. No URL anywhere means "not configured",
 * which the bot answers with a refusal rather than failing to start; a URL without a model, or a URL
 * that is not http(s), is a configuration mistake and fails at start with the fix.
 */
import { ConfigError } from '../../index.js';

/** A model server the client can call. `apiKey` is never logged: use describeServer() for logs. */
export interface ModelServer {
  /** The chat-completions endpoint, e.g. http://127.0.0.1:11434/v1/chat/completions. */
  readonly endpoint: string;
  readonly model: string;
  readonly apiKey: string | undefined;
}

/** What bot.options may say about the server. */
export interface ModelServerOptions {
  /** Base URL of an OpenAI-compatible API (…/v1), or the full …/chat/completions URL. */
  url?: string;
  model?: string;
  /** Prefer RELAY_ASSISTANT_API_KEY: config files end up in repositories. */
  apiKey?: string;
}

export type Environment = Readonly<Record<string, string | undefined>>;

const nonEmpty = (v: string | undefined): string | undefined =>
  v === undefined || v.trim() === '' ? undefined : v.trim();

/** The chat-completions URL for a base URL; a URL already naming the endpoint is kept as it is. */
export function chatCompletionsUrl(base: string, from: string): string {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new ConfigError(
      `${from} ${JSON.stringify(base)} is not a URL. Fix: give the server's OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`${from} must be an http:// or https:// URL, got ${url.protocol}//…`);
  }
  const path = url.pathname.replace(/\/+$/, '');
  if (!path.endsWith('/chat/completions')) url.pathname = `${path}/chat/completions`;
  return url.href;
}

/** The configured server, or undefined when no URL is set anywhere. */
export function resolveModelServer(options: ModelServerOptions, env: Environment): ModelServer | undefined {
  const fromEnv = nonEmpty(env.RELAY_ASSISTANT_URL);
  const fromOptions = nonEmpty(options.url);
  const fromOpenAi = nonEmpty(env.OPENAI_BASE_URL);
  const base = fromEnv ?? fromOptions ?? fromOpenAi;
  if (base === undefined) return undefined;
  const from = fromEnv ? 'RELAY_ASSISTANT_URL' : fromOptions ? 'bot.options.url' : 'OPENAI_BASE_URL';
  const model = nonEmpty(env.RELAY_ASSISTANT_MODEL) ?? nonEmpty(options.model);
  if (model === undefined) {
    throw new ConfigError(
      `the assistant has a model server (${from}) but no model. Fix: set RELAY_ASSISTANT_MODEL or bot.options.model to a model the server serves, e.g. llama3.2`,
    );
  }
  return {
    endpoint: chatCompletionsUrl(base, from),
    model,
    apiKey: nonEmpty(env.RELAY_ASSISTANT_API_KEY) ?? nonEmpty(options.apiKey) ?? nonEmpty(env.OPENAI_API_KEY),
  };
}

/** The server for logs: endpoint without user:password, the model, and whether a key is set. */
export function describeServer(server: ModelServer): {
  endpoint: string;
  model: string;
  apiKey: 'set' | 'none';
} {
  const url = new URL(server.endpoint);
  url.username = '';
  url.password = '';
  return { endpoint: url.href, model: server.model, apiKey: server.apiKey === undefined ? 'none' : 'set' };
}
