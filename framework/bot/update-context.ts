/**
 * Builds the BotContext of one update, for messages and membership changes alike, plus what the
 * runtime's own middleware (timeout, recover, session, group intents) share about that update.
 */
import type { Logger } from 'pino';
import type { UserIdHex } from '../relay/brand.js';
import type { ContentInput } from '../relay/content.js';
import { ArgumentError, ConfigError, HandlerError } from '../relay/errors.js';
import { actionsContent, deleteContent, editContent, reactionContent } from './agent-content.js';
import type { Args } from './args.js';
import type { AttachInput } from './attachments.js';
import type { AttachmentContent } from '../relay/content-types.js';
import type { ReceivedFile } from '../relay/attachments/index.js';
import {
  type BotContext,
  type ChosenAction,
  type ReceivedReaction,
  type BotSelf,
  type Conversation,
  type HandleDeps,
  type ReplyContent,
  type ReplyGate,
  type ScheduleRequest,
  type Update,
} from './context.js';
import type { BotTransaction } from './data.js';
import type { DetachedRun } from './detached-run.js';
import type { GroupHandle } from './group.js';
import type { TimeLease } from './time-lease.js';
import type { LazySession } from './session.js';

const USER_ID_HEX = /^[0-9a-f]{32}$/;

/** What the runtime's middleware share about one update (not for handlers). */
export interface UpdateRun {
  readonly deps: HandleDeps;
  readonly session: LazySession<unknown>;
  /** Aborted by the timeout middleware; its signal is ctx.signal. */
  readonly controller: AbortController;
  /** Where replies go while the handlers run; closed by the timeout middleware when they are done. */
  readonly gate: ReplyGate;
  /** The raw reply hook behind the gate, for @OnError's own gate. */
  readonly reply: (r: string | ContentInput) => void;
  /** Called with a reply made after its gate closed. */
  readonly late: () => void;
  /** Posts to the conversation and waits for it (membership handlers' ctx.reply). */
  readonly post: (r: string | ContentInput) => Promise<void>;
  /** The handler's time limit counts from its last renewal (stream parts renew it). */
  readonly lease: TimeLease;
  /** A message update's run, which may commit early and go on detached; undefined for membership updates. */
  readonly detached: DetachedRun | undefined;
  /** A fresh message id. */
  readonly newId: () => string;
  /**
   * A handler past its time limit keeps running, unanswered: `running` (settles, never rejects)
   * is handed to the runtime, whose stop() aborts `controller` again and waits for it, bounded.
   */
  readonly abandon: (running: Promise<unknown>, controller: AbortController, label: string) => void;
  /** The group intents of a message update; undefined for membership updates. */
  readonly intents: { settle(handlerOk: boolean): void } | undefined;
}

/** The chain's context: a BotContext plus what only the runtime's middleware need. */
export interface UpdateContext<A = Args, S = Record<string, unknown>> extends BotContext<A, S> {
  /** `/cmd@us` rather than a bare `/cmd`, which in a group may be meant for another bot. */
  readonly addressedByName: boolean;
  readonly run: UpdateRun;
  /** A context for one handler: same update and session, its own args/match (and gate/signal if given). */
  derive<B = A>(change: ContextChange<B>): UpdateContext<B, S>;
}

export interface ContextChange<B> {
  args?: B | undefined;
  match?: RegExpExecArray | undefined;
  gate?: ReplyGate | undefined;
  signal?: AbortSignal | undefined;
}

export interface UpdateInit {
  readonly update: Update;
  readonly conversation: Conversation;
  readonly sender: UserIdHex;
  readonly command: string | undefined;
  readonly argsText: string;
  readonly group: GroupHandle | undefined;
  readonly bot: BotSelf;
  readonly log: Logger;
  readonly tx: BotTransaction;
  readonly addressedByName: boolean;
  readonly run: UpdateRun;
  readonly now: () => number;
  /** Writes a job into the transaction; the context has already validated and resolved it. */
  readonly schedule: (job: { to: string; text: string; dueAt: number }) => string;
  /** The verified files of the message (ctx.attachments). */
  readonly attachments?: readonly ReceivedFile[];
  /** Builds ctx.attach()'s content (uploading a large file). */
  readonly seal?: (file: AttachInput) => Promise<AttachmentContent>;
}

export function updateContext<A = Args, S = Record<string, unknown>>(
  init: UpdateInit,
  change: ContextChange<A> = {},
): UpdateContext<A, S> {
  const { update, conversation, run } = init;
  const gate = change.gate ?? run.gate;
  const message = update.kind === 'message' ? update.message : undefined;
  const args = (change.args ?? {}) as A;
  const content = message?.content;
  const action: ChosenAction | undefined =
    content?.type === 'action' && content.replyTo !== undefined
      ? { id: content.content, messageId: content.replyTo }
      : undefined;
  const reaction: ReceivedReaction | undefined =
    content?.type === 'reaction' && content.replyTo !== undefined
      ? {
          emoji: content.content,
          messageId: content.replyTo,
          removed: 'remove' in content && content.remove === true,
        }
      : undefined;
  const detached = (what: string): DetachedRun => {
    if (!run.detached) throw new HandlerError(`ctx.${what} works in message handlers only`);
    if (!gate.isOpen) throw new HandlerError(`ctx.${what} after the handler finished or timed out`);
    return run.detached;
  };
  /** Pushes content with an id (fresh unless given) and returns the id. */
  const push = (c: ContentInput): string => {
    const id = c.id ?? run.newId();
    gate.push({ ...c, id } as ContentInput);
    return id;
  };
  const incomingId = (what: string): string => {
    const id = message?.content.id;
    if (id === undefined) throw new HandlerError(`ctx.${what}: the incoming message has no id to refer to`);
    return id;
  };
  return {
    update,
    text: message?.content.content ?? '',
    command: init.command,
    args,
    argsText: init.argsText,
    match: change.match,
    sender: init.sender,
    conversation,
    group: init.group,
    message,
    action,
    reaction,
    bot: init.bot,
    log: init.log,
    session: run.session as unknown as BotContext<A, S>['session'],
    tx: init.tx,
    signal: change.signal ?? run.controller.signal,
    addressedByName: init.addressedByName,
    attachments: init.attachments ?? [],
    run,

    derive<B = A>(next: ContextChange<B>): UpdateContext<B, S> {
      return updateContext<B, S>(init, {
        args: next.args ?? (args as unknown as B),
        match: next.match ?? change.match,
        gate: next.gate ?? gate,
        signal: next.signal ?? change.signal,
      });
    },

    reply(reply: string | ReplyContent): string {
      const c: ReplyContent = typeof reply === 'string' ? { content: reply } : reply;
      const to = c.replyTo ?? message?.content.id;
      return push({ ...c, ...(to !== undefined ? { replyTo: to } : {}) });
    },

    react(emoji: string): void {
      push(reactionContent(emoji, incomingId('react()')));
    },

    edit(messageId: string, text: string): void {
      push(editContent(messageId, text));
    },

    delete(messageId: string): void {
      push(deleteContent(messageId));
    },

    actions(prompt: string, actions: readonly { id: string; label: string }[]): string {
      const c = actionsContent(prompt, actions);
      const to = message?.content.id;
      return push({ ...c, ...(to !== undefined ? { replyTo: to } : {}) });
    },

    async attach(file: AttachInput, options: { replyTo?: string } = {}): Promise<string> {
      if (!gate.isOpen) throw new HandlerError('attach() after the handler finished or timed out');
      if (!init.seal)
        throw new ConfigError('ctx.attach() needs a BotRuntime: this context has no attachments');
      const c = await init.seal(file);
      const to = options.replyTo ?? message?.content.id;
      return push({ ...c, ...(to !== undefined ? { replyTo: to } : {}) });
    },

    typing(): Promise<void> {
      return detached('typing()').typingStart();
    },

    stream(parts: AsyncIterable<string>, options: { replyTo?: string } = {}): Promise<string> {
      return detached('stream()').streamReply(parts, options.replyTo, change.signal ?? run.controller.signal);
    },

    async send(userId: string, text: string): Promise<void> {
      if (!USER_ID_HEX.test(userId))
        throw new ArgumentError('send() needs a user id of 32 lowercase hex digits');
      if (!gate.isOpen) throw new HandlerError('send() after the handler finished or timed out');
      if (message && conversation.kind === 'direct' && userId === conversation.id) {
        throw new HandlerError(
          'send() to the sender of the message being handled would wait on itself; use reply()',
        );
      }
      await run.deps.send(userId, text);
    },

    schedule(job: ScheduleRequest): string {
      if (!gate.isOpen) throw new HandlerError('schedule() after the handler finished or timed out');
      if (typeof job?.text !== 'string' || job.text === '')
        throw new ArgumentError('schedule() needs a non-empty text');
      if ((job.inMs === undefined) === (job.at === undefined))
        throw new ArgumentError('schedule() needs exactly one of inMs and at');
      const dueAt = job.at ?? init.now() + (job.inMs ?? 0);
      if (!Number.isSafeInteger(dueAt) || dueAt < 0 || (job.inMs !== undefined && job.inMs < 0)) {
        throw new ArgumentError('schedule(): inMs and at are whole, non-negative numbers of milliseconds');
      }
      const to = job.to ?? (conversation.kind === 'direct' ? conversation.id : undefined);
      if (to === undefined) throw new ArgumentError('schedule() in a group needs a recipient: { to }');
      if (!USER_ID_HEX.test(to))
        throw new ArgumentError('schedule() needs a user id of 32 lowercase hex digits');
      return init.schedule({ to, text: job.text, dueAt });
    },
  };
}
