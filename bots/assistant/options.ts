/**
 * The assistant's settings (bot.options in the config file), checked once at start: an unknown key
 * or a wrong value fails the start with the fix, instead of a bot that misbehaves later.
 */
import { ConfigError } from '../../index.js';
import type { ModelServerOptions } from './server-config.js';

export interface AssistantBotOptions extends ModelServerOptions {
  /** The system prompt sent first in every request. */
  systemPrompt?: string;
  /** Question/answer pairs of history kept per conversation (default 10; 0 keeps none). */
  maxTurns?: number;
  /** Characters of history kept per conversation, questions and answers together (default 12 000). */
  maxHistoryChars?: number;
  /** Longest question accepted (default 4000 characters). */
  maxQuestionChars?: number;
  /** The answer is cut at this many characters (default 16 000). */
  maxAnswerChars?: number;
  /** Time allowed until the first token of the answer (default 60 000 ms). */
  firstTokenTimeoutMs?: number;
  /** Longest silence in the middle of an answer (default 30 000 ms). */
  idleTimeoutMs?: number;
  /** Passed to the server as `temperature`. */
  temperature?: number;
  /** Passed to the server as `max_tokens`. */
  maxTokens?: number;
  /** How often "typing…" is repeated while waiting for the first token (default 5000 ms). */
  typingEveryMs?: number;
}

export type CheckedOptions = Required<
  Pick<
    AssistantBotOptions,
    | 'maxTurns'
    | 'maxHistoryChars'
    | 'maxQuestionChars'
    | 'maxAnswerChars'
    | 'firstTokenTimeoutMs'
    | 'idleTimeoutMs'
    | 'typingEveryMs'
  >
> &
  Pick<AssistantBotOptions, 'systemPrompt' | 'temperature' | 'maxTokens' | 'url' | 'model' | 'apiKey'>;

const WHOLE: Record<keyof CheckedOptions & string, { min: number; default?: number } | undefined> = {
  maxTurns: { min: 0, default: 10 },
  maxHistoryChars: { min: 0, default: 12_000 },
  maxQuestionChars: { min: 1, default: 4000 },
  maxAnswerChars: { min: 1, default: 16_000 },
  firstTokenTimeoutMs: { min: 1, default: 60_000 },
  idleTimeoutMs: { min: 1, default: 30_000 },
  typingEveryMs: { min: 3000, default: 5000 },
  maxTokens: { min: 1 },
  systemPrompt: undefined,
  temperature: undefined,
  url: undefined,
  model: undefined,
  apiKey: undefined,
};
const TEXT = ['systemPrompt', 'url', 'model', 'apiKey'] as const;

/** The options with defaults filled in; throws ConfigError naming the key and the fix. */
export function checkOptions(input: unknown): CheckedOptions {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError('the assistant bot.options must be a mapping of option names to values');
  }
  const given = input as Record<string, unknown>;
  const unknown = Object.keys(given).filter((k) => !(k in WHOLE));
  if (unknown.length > 0) {
    throw new ConfigError(
      `the assistant has no option ${unknown.map((k) => JSON.stringify(k)).join(', ')}. Fix: use only ${Object.keys(WHOLE).join(', ')}`,
    );
  }
  const out: Record<string, unknown> = {};
  for (const [key, rule] of Object.entries(WHOLE)) {
    if (rule === undefined) continue;
    const v = given[key] ?? rule.default;
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < rule.min) {
      throw new ConfigError(
        `the assistant option ${key} must be a whole number of at least ${rule.min}, got ${JSON.stringify(v)}`,
      );
    }
    out[key] = v;
  }
  for (const key of TEXT) {
    const v = given[key];
    if (v === undefined) continue;
    if (typeof v !== 'string') {
      throw new ConfigError(`the assistant option ${key} must be text, got ${JSON.stringify(typeof v)}`);
    }
    out[key] = v;
  }
  const t = given.temperature;
  if (t !== undefined) {
    if (typeof t !== 'number' || !(t >= 0 && t <= 2)) {
      throw new ConfigError(
        `the assistant option temperature must be a number from 0 to 2, got ${JSON.stringify(t)}`,
      );
    }
    out.temperature = t;
  }
  return out as CheckedOptions;
}
