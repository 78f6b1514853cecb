/**
 * The conversation history the assistant keeps in ctx.session, and the bounds that keep it small:
 * the last `maxTurns` question/answer pairs whose text fits `maxChars` together. The oldest pairs go
 * first; a pair is never split, so the model never sees an answer without its question.
 */
import type { ChatMessage } from './model-client.js';

/** One question and the answer the assistant gave to it. */
export interface Turn {
  readonly question: string;
  readonly answer: string;
}

/** What the assistant keeps per conversation (ctx.session). */
export interface AssistantSession {
  history?: Turn[];
}

export interface HistoryBounds {
  readonly maxTurns: number;
  readonly maxChars: number;
}

const turnChars = (t: Turn): number => t.question.length + t.answer.length;

/** The newest turns within the bounds, oldest first. */
export function boundHistory(turns: readonly Turn[], bounds: HistoryBounds): Turn[] {
  const kept: Turn[] = [];
  let chars = 0;
  for (let i = turns.length - 1; i >= 0 && kept.length < bounds.maxTurns; i--) {
    const turn = turns[i]!;
    chars += turnChars(turn);
    if (chars > bounds.maxChars) break;
    kept.push(turn);
  }
  return kept.reverse();
}

/**
 * The stored history, keeping only well-formed turns: the session is our own data, but a session
 * written by an older version (or edited by hand) must not break the request.
 */
export function readHistory(session: AssistantSession): Turn[] {
  const raw: unknown = session.history;
  if (!Array.isArray(raw)) return [];
  return raw.filter(
    (t): t is Turn =>
      typeof t === 'object' &&
      t !== null &&
      typeof (t as Turn).question === 'string' &&
      typeof (t as Turn).answer === 'string',
  );
}

/** The request's messages: the system prompt, the history as user/assistant pairs, the question. */
export function chatMessages(
  systemPrompt: string | undefined,
  history: readonly Turn[],
  question: string,
): ChatMessage[] {
  return [
    ...(systemPrompt !== undefined && systemPrompt !== ''
      ? [{ role: 'system' as const, content: systemPrompt }]
      : []),
    ...history.flatMap((t) => [
      { role: 'user' as const, content: t.question },
      { role: 'assistant' as const, content: t.answer },
    ]),
    { role: 'user', content: question },
  ];
}
