/**
 * /research <topic…>: a long job as a durable task (framework/bot/tasks.ts). The answer is written
 * by the model like /ask's, but not streamed into the conversation: the requester sees `working`
 * updates with how much is written so far, and the whole answer as the task's `completed` result.
 * It resumes after a restart (the model is simply asked again), and the requester can cancel it,
 * which aborts the model request.
 */
import type { TaskContext } from '../../index.js';
import { ModelError, type ModelErrorReason } from './errors.js';
import { chatMessages } from './history.js';
import type { ModelClient } from './model-client.js';

/** The instruction that turns a topic into a research request. */
export const RESEARCH_PROMPT = 'Write a thorough, well-organised report on this topic:';

/** What a research task needs of the bot. */
export interface ResearchDeps {
  readonly client: ModelClient;
  readonly systemPrompt: string | undefined;
  readonly maxAnswerChars: number;
  /** One sentence for the conversation per model failure. */
  readonly explain: (err: ModelError) => string;
}

/** Runs one research task; its return value is the `completed` result. */
export async function research(ctx: TaskContext<{ topic: string }>, deps: ResearchDeps): Promise<string> {
  const topic = ctx.args.topic.trim();
  const messages = chatMessages(deps.systemPrompt, [], `${RESEARCH_PROMPT} ${topic}`);
  let text = '';
  try {
    for await (const part of deps.client.stream(messages, { signal: ctx.signal })) {
      text += part;
      if (text.length >= deps.maxAnswerChars) {
        text = `${text.slice(0, deps.maxAnswerChars)}\n\n(report cut at ${deps.maxAnswerChars} characters)`;
        break;
      }
      ctx.task.progress(undefined, `writing: ${text.length} characters so far`);
    }
  } catch (err) {
    if (!(err instanceof ModelError)) throw err;
    ctx.log.warn({ reason: err.reason, status: err.status, err: err.message }, 'research failed');
    throw new ResearchFailed(err.reason, deps.explain(err));
  }
  if (text === '') throw new Error('the model returned an empty report');
  return text;
}

/** A research task ended by a model failure; its message is what the requester reads. */
class ResearchFailed extends Error {
  constructor(
    readonly reason: ModelErrorReason,
    message: string,
  ) {
    super(message);
  }
}
