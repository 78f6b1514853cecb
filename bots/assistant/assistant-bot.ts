/**
 * The assistant: a language-model agent over any OpenAI-compatible chat-completions server.
 *
 *   /ask <question…>   asks the model (in 1:1 chats plain text does the same)
 *   @assistant <text>  in a group, plain text is answered only when it mentions the bot
 *   /reset             forgets this conversation's history
 *   /research <topic…> a long report as a durable task (research.ts): progress, then the result
 *
 * In a group the bot answers commands (bare `/ask` or `/ask@assistant`, as every bot does) and
 * messages that mention it by name or user id (`@assistant`), and stays silent on the rest: a
 * group's chatter is not meant for it, and two bots answering every message would answer each other.
 *
 * An answer is streamed into the conversation with ctx.stream as the model writes it, with "typing…"
 * until the first token. The history lives in ctx.session (so it commits with the message) within
 * maxTurns and maxHistoryChars; a group's history is shared by its members. A model failure before
 * the first token is answered with one short sentence; a failure in the middle of an answer ends
 * the streamed text with a note saying it was cut short, and that turn is not kept in the history.
 */
import { Bot, OnCommand, OnMessage, type Args, type BotContext, type TaskContext } from '../../index.js';
import { ModelError } from './errors.js';
import {
  boundHistory,
  chatMessages,
  readHistory,
  type AssistantSession,
  type HistoryBounds,
} from './history.js';
import { ModelClient } from './model-client.js';
import { checkOptions, type AssistantBotOptions, type CheckedOptions } from './options.js';
import { describeServer, resolveModelServer, type Environment } from './server-config.js';
import { research } from './research.js';
import { TypingIndicator } from './typing.js';

/** Where the assistant gets things the config file does not give: the environment, and fetch for tests. */
export interface AssistantBotDeps {
  env?: Environment;
  fetch?: typeof fetch;
}

export const NOT_CONFIGURED =
  'no model server is configured: set RELAY_ASSISTANT_URL and RELAY_ASSISTANT_MODEL where the bot runs (or url and model under bot.options), then restart it';

/** One sentence per model failure, for the conversation; the details go to the log. */
export function modelErrorReply(err: ModelError): string {
  switch (err.reason) {
    case 'unauthorized':
      return 'the model server refused my API key; whoever runs me should check RELAY_ASSISTANT_API_KEY';
    case 'rate-limited':
      return 'the model server is busy (rate limited); try again in a minute';
    case 'server':
      return 'the model server failed; try again later';
    case 'rejected':
      return `the model server rejected the request${err.status === undefined ? '' : ` (HTTP ${err.status})`}; whoever runs me should check the model name (RELAY_ASSISTANT_MODEL)`;
    case 'timeout':
      return 'the model server did not answer in time; try again later';
    case 'malformed':
      return 'the model server sent an answer I could not read';
    case 'unreachable':
      return 'I cannot reach the model server right now; try again later';
  }
}

/** The note that ends an answer cut short. */
function cutShortNote(err: ModelError): string {
  const why =
    err.reason === 'timeout'
      ? 'the model server stopped answering'
      : err.reason === 'malformed'
        ? 'the model server sent something I could not read'
        : 'the model server failed';
  return `\n\n(answer cut short: ${why})`;
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The question in a group message that mentions the bot (`@name` or `@userid`, any case, anywhere
 * as a word), with the mention removed; undefined when the message does not mention it.
 */
export function mentionedQuestion(text: string, self: { name: string; userId: string }): string | undefined {
  const names = [self.name, self.userId].map(escapeRegExp).join('|');
  const mention = new RegExp(`(^|\\s)@(?:${names})(?![\\w-])[,:]?[ \\t]*`, 'gi');
  if (!mention.test(text)) return undefined;
  // The rest is kept as written: a question may be laid out in lines.
  return text.replace(mention, '$1').trim();
}

/** The answer as it is relayed: its text so far, cut at a limit, and the failure that ended it. */
class Relayed {
  text = '';
  failure: ModelError | undefined;

  constructor(private readonly maxChars: number) {}

  /** The part of `part` that still fits, and whether some of it did not (the answer is cut). */
  take(part: string): { fits: string; full: boolean } {
    const room = this.maxChars - this.text.length;
    const fits = part.length <= room ? part : part.slice(0, room);
    this.text += fits;
    return { fits, full: part.length > room };
  }
}

@Bot({ name: 'assistant', description: 'answers questions with a language model' })
export class AssistantBot {
  private readonly options: CheckedOptions;
  private readonly client: ModelClient | undefined;
  private readonly bounds: HistoryBounds;
  /** For the start-up log line: never the key. */
  readonly server: ReturnType<typeof describeServer> | undefined;

  constructor(options: AssistantBotOptions = {}, deps: AssistantBotDeps = {}) {
    this.options = checkOptions(options);
    const server = resolveModelServer(this.options, deps.env ?? process.env);
    this.server = server === undefined ? undefined : describeServer(server);
    this.client =
      server === undefined
        ? undefined
        : new ModelClient(server, {
            firstTokenTimeoutMs: this.options.firstTokenTimeoutMs,
            idleTimeoutMs: this.options.idleTimeoutMs,
            ...(this.options.temperature !== undefined ? { temperature: this.options.temperature } : {}),
            ...(this.options.maxTokens !== undefined ? { maxTokens: this.options.maxTokens } : {}),
            ...(deps.fetch !== undefined ? { fetch: deps.fetch } : {}),
          });
    this.bounds = { maxTurns: this.options.maxTurns, maxChars: this.options.maxHistoryChars };
  }

  @OnCommand('ask', {
    args: '<question...>',
    description: 'asks the model; in a group also @assistant <question>',
  })
  ask(ctx: BotContext<{ question: string }, AssistantSession>): Promise<string | undefined> {
    return this.answer(ctx, ctx.args.question);
  }

  @OnCommand('research', {
    args: '<topic...>',
    description: 'a long report on a topic, as a task: progress, then the result; survives restarts',
    task: { onRestart: 'resume' },
  })
  research(ctx: TaskContext<{ topic: string }>): Promise<string> {
    if (this.client === undefined) return Promise.resolve(NOT_CONFIGURED);
    return research(ctx, {
      client: this.client,
      systemPrompt: this.options.systemPrompt,
      maxAnswerChars: this.options.maxAnswerChars,
      explain: modelErrorReply,
    });
  }

  @OnCommand('reset', { description: "forgets this conversation's history" })
  async reset(ctx: BotContext<Args, AssistantSession>): Promise<string> {
    const session = await ctx.session.get();
    const turns = readHistory(session).length;
    session.history = [];
    return turns === 0 ? 'there was nothing to forget' : `forgot ${turns} question${turns === 1 ? '' : 's'}`;
  }

  /** Plain text: every message in a 1:1 chat; in a group only a message that mentions the bot. */
  @OnMessage()
  message(ctx: BotContext<Args, AssistantSession>): Promise<string | undefined> | undefined {
    // Other content types (reactions, typing, edits …) are not questions.
    const type = (ctx.message?.content as { type?: string } | undefined)?.type;
    if (type !== undefined && type !== 'text') return undefined;
    const question = ctx.conversation.kind === 'direct' ? ctx.text : mentionedQuestion(ctx.text, ctx.bot);
    if (question === undefined) return undefined;
    return this.answer(ctx, question);
  }

  private async answer<A>(ctx: BotContext<A, AssistantSession>, asked: string): Promise<string | undefined> {
    if (this.client === undefined) return NOT_CONFIGURED;
    const question = asked.trim();
    if (question === '') {
      return ctx.conversation.kind === 'group'
        ? `ask me something: /ask@${ctx.bot.name} <question> or @${ctx.bot.name} <question>`
        : 'ask me something: /ask <question>, or just write it';
    }
    if (question.length > this.options.maxQuestionChars) {
      return `a question has at most ${this.options.maxQuestionChars} characters; this one has ${question.length}`;
    }
    const session = await ctx.session.get();
    const history = boundHistory(readHistory(session), this.bounds);
    const parts = this.client.stream(chatMessages(this.options.systemPrompt, history, question), {
      signal: ctx.signal,
    });
    const typing = new TypingIndicator(() => ctx.typing(), ctx.log, this.options.typingEveryMs);
    typing.start();
    let first: IteratorResult<string, void>;
    try {
      first = await parts.next();
    } catch (err) {
      if (!(err instanceof ModelError)) throw err;
      ctx.log.warn({ reason: err.reason, status: err.status, err: err.message }, 'the model call failed');
      return modelErrorReply(err);
    } finally {
      typing.stop();
    }
    if (first.done) return 'the model returned an empty answer; try asking differently';
    const relayed = new Relayed(this.options.maxAnswerChars);
    await ctx.stream(this.relay(first.value, parts, relayed, ctx));
    if (relayed.failure === undefined) {
      session.history = boundHistory([...history, { question, answer: relayed.text }], this.bounds);
    }
    return undefined;
  }

  /**
   * The model's parts as they come, then the end: nothing more when the model finished, a note when
   * the answer hit maxAnswerChars or the model failed mid-way. A ModelError ends the stream with the
   * note instead of failing it, so the conversation gets the partial answer and the reason in one
   * final message; anything else (the handler's own abort) fails the stream.
   */
  private async *relay<A>(
    first: string,
    rest: AsyncGenerator<string, void>,
    relayed: Relayed,
    ctx: BotContext<A, AssistantSession>,
  ): AsyncGenerator<string, void> {
    try {
      let taken = relayed.take(first);
      yield taken.fits;
      if (!taken.full) {
        for await (const part of rest) {
          taken = relayed.take(part);
          if (taken.fits !== '') yield taken.fits;
          if (taken.full) break;
        }
      }
      if (taken.full) yield `\n\n(answer cut at ${this.options.maxAnswerChars} characters)`;
    } catch (err) {
      if (!(err instanceof ModelError)) throw err;
      ctx.log.warn(
        { reason: err.reason, status: err.status, err: err.message },
        'the model answer broke off',
      );
      relayed.failure = err;
      yield cutShortNote(err);
    } finally {
      // Stops the request when the answer was cut or the stream's consumer gave up.
      await rest.return(undefined);
    }
  }
}
