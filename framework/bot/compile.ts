/**
 * The compiler: a BotPlan → middleware, one per handler, in this order:
 *
 *   recover → group intents → time limit → automatic typing → session save → plugins' middleware
 *     → use()'s → each command → each @OnMessage → each @OnAction → each @OnReaction → each @OnAttachment
 *     → each @OnJoin/@OnLeave/@OnMembers → unknown-command answer
 *
 * The first five are the runtime's own concerns as ordinary middleware (middleware/*.ts). Every
 * update, message or membership change, runs through the same chain; handler middleware pass
 * updates of other kinds on. Pure: nothing here touches a client.
 */
import { ConfigError } from '../relay/errors.js';
import { ParseError } from './errors.js';
import { compose, type Middleware, type MiddlewareLike } from './composer.js';
import type { BotContext, Conversation, MembersContext, MembershipContext } from './context.js';
import type { Guard, PlannedGuard } from './guards.js';
import { helpAnswer } from './help.js';
import { autoTyping } from './middleware/auto-typing.js';
import { groupIntents } from './middleware/group-intents.js';
import { answerWith, HANDLER_LABELS, recover } from './middleware/recover.js';
import { sessionSave } from './middleware/session.js';
import { timeLimit } from './middleware/timeout.js';
import { parseArgs } from './parser.js';
import type { Args } from './args.js';
import type {
  BotPlan,
  BoundHandler,
  MembershipKind,
  PlannedActionHandler,
  PlannedAttachmentHandler,
  PlannedCommand,
  PlannedMessageHandler,
  PlannedReactionHandler,
} from './scan.js';
import type { UpdateContext } from './update-context.js';

/** How compileBot() builds the chain: runtime hooks and an optional wrapper for its own middleware. */
export interface CompileOptions {
  /** Runs after the runtime's own middleware, before the handlers (BotRuntime.use()). */
  readonly user?: MiddlewareLike<BotContext>;
  /** Sent when a guard refuses; defaults to `you are not allowed to use /name` (or who may). */
  readonly refusalReply?: string;
  /** Answer `unknown command /foo — try /help` (default true; in groups only to `/foo@us`). */
  readonly unknownCommandReply?: boolean;
  /** Sent when a handler fails and no @OnError answers; false sends nothing. */
  readonly errorReply?: string | false;
  /**
   * Wraps one of the runtime's own middleware, e.g. to count recoveries or time the handlers:
   * `(name, mw) => async (ctx, next) => { …; await mw(ctx, next); … }`. Return `mw` to keep it.
   */
  readonly wrap?: WrapRuntimeMiddleware;
  /** Runs task commands and `task-cancel` messages (tasks.ts); BotRuntime passes its TaskManager. */
  readonly tasks?: TaskHooks;
}

/** How the chain hands task commands and cancel requests to the runtime's tasks. */
export interface TaskHooks {
  submit(cmd: PlannedCommand, ctx: UpdateContext): Promise<void>;
  cancel(ctx: UpdateContext): Promise<void>;
}

/** The runtime's own middleware, by name, as WrapRuntimeMiddleware sees them. */
export type RuntimeMiddlewareName =
  'recover' | 'group-intents' | 'time-limit' | 'auto-typing' | 'session-save';
/** Lets a plugin wrap or replace one of the runtime's own middleware. */
export type WrapRuntimeMiddleware = (
  name: RuntimeMiddlewareName,
  mw: Middleware<UpdateContext>,
) => Middleware<UpdateContext>;

/** The whole chain an update runs through. */
export function compileBot(plan: BotPlan, options: CompileOptions = {}): Middleware<UpdateContext> {
  const wrap: WrapRuntimeMiddleware = options.wrap ?? ((_name, mw) => mw);
  const { onError, handlerTimeoutMs } = plan;
  return compose<UpdateContext>([
    wrap('recover', recover({ onError, errorReply: options.errorReply, handlerTimeoutMs })),
    wrap('group-intents', groupIntents),
    wrap('time-limit', timeLimit(handlerTimeoutMs)),
    wrap('auto-typing', autoTyping(plan.typing)),
    wrap('session-save', sessionSave),
    ...(plan.middleware as readonly Middleware<UpdateContext>[]),
    ...(options.user ? [options.user as MiddlewareLike<UpdateContext>] : []),
    ...compileHandlers(plan, options),
  ]);
}

/** One middleware per handler, then the unknown-command answer. */
export function compileHandlers(plan: BotPlan, options: CompileOptions = {}): Middleware<UpdateContext>[] {
  const membership = (Object.keys(plan.membership) as MembershipKind[]).flatMap((kind) =>
    plan.membership[kind].map((h) => membershipHandler(kind, h)),
  );
  return [
    ...(options.tasks ? [taskCancelHandler(options.tasks)] : []),
    ...plan.commands.map((c) => commandHandler(plan, c, options)),
    ...plan.messages.map(messageHandler),
    ...plan.actions.map(actionHandler),
    ...plan.reactions.map(reactionHandler),
    ...plan.attachments.map(attachmentHandler),
    ...membership,
    unknownCommand(plan, options),
  ];
}

function commandHandler(
  plan: BotPlan,
  cmd: PlannedCommand,
  options: CompileOptions,
): Middleware<UpdateContext> {
  const names = new Set([cmd.name, ...cmd.aliases]);
  const admit = cmd.guard && guardCheck(plan, cmd.guard);
  const handler = cmd.handler ?? builtInHelp(plan);
  return async (ctx, next) => {
    if (ctx.command === undefined || !names.has(ctx.command)) return next();
    // Before parsing, so a refused user learns nothing about the arguments.
    if (admit && !(await admit(ctx))) {
      ctx.reply(options.refusalReply ?? refusal(cmd, ctx.conversation));
      return;
    }
    let args: Args = {};
    if (cmd.args) {
      try {
        args = parseArgs(cmd.name, cmd.args, ctx.argsText);
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
        ctx.reply(`${e.usage ?? cmd.usage}\n${e.reason}`);
        return;
      }
    }
    if (cmd.task) {
      if (!options.tasks) throw new ConfigError(`/${cmd.name} is a task command: run it in a BotRuntime`);
      await options.tasks.submit(cmd, ctx);
      return;
    }
    const hctx = ctx.derive({ args });
    answerWith(hctx, await handler(hctx));
  };
}

/** A `task-cancel` message goes to the runtime's tasks, which check who sent it. */
function taskCancelHandler(tasks: TaskHooks): Middleware<UpdateContext> {
  return async (ctx, next) => {
    if (ctx.message?.content.type !== 'task-cancel') return next();
    await tasks.cancel(ctx);
  };
}

function messageHandler(planned: PlannedMessageHandler): Middleware<UpdateContext> {
  const { filter, handler } = planned;
  return async (ctx, next) => {
    if (ctx.update.kind !== 'message' || ctx.command !== undefined) return next();
    if (ctx.update.message.content.type !== 'text') return next();
    let match: RegExpExecArray | undefined;
    if (filter instanceof RegExp) {
      match = filter.exec(ctx.text) ?? undefined;
      if (!match) return next();
    } else if (filter && !(await filter(ctx))) {
      return next();
    }
    const hctx = ctx.derive({ match });
    answerWith(hctx, await handler(hctx));
  };
}

/** An `action` message whose id matches (or any): the first matching @OnAction answers it. */
function actionHandler(planned: PlannedActionHandler): Middleware<UpdateContext> {
  return async (ctx, next) => {
    const action = ctx.action;
    if (!action || (planned.id !== undefined && planned.id !== action.id)) return next();
    answerWith(ctx, await planned.handler(ctx));
  };
}

/** A `reaction` message with the emoji (or any): the first matching @OnReaction answers it. */
function reactionHandler(planned: PlannedReactionHandler): Middleware<UpdateContext> {
  return async (ctx, next) => {
    const reaction = ctx.reaction;
    if (!reaction || (planned.emoji !== undefined && planned.emoji !== reaction.emoji)) return next();
    answerWith(ctx, await planned.handler(ctx));
  };
}

/** A verified file of the media type (or prefix ending in `/`, or any): the first matching @OnAttachment. */
function attachmentHandler(planned: PlannedAttachmentHandler): Middleware<UpdateContext> {
  const want = planned.mediaType;
  return async (ctx, next) => {
    const file = ctx.attachments[0];
    if (!file) return next();
    if (
      want !== undefined &&
      (want.endsWith('/') ? !file.mediaType.startsWith(want) : file.mediaType !== want)
    )
      return next();
    answerWith(ctx, await planned.handler(ctx));
  };
}

/** Every handler of the kind runs; one failing is logged and does not stop the others. */
function membershipHandler(kind: MembershipKind, handler: BoundHandler): Middleware<UpdateContext> {
  return async (ctx, next) => {
    const update = ctx.update;
    if (update.kind !== kind) return next();
    const view: MembershipContext | MembersContext = {
      ...(update as MembershipContext | MembersContext),
      bot: ctx.bot,
      log: ctx.log,
      send: (userId, text) => ctx.send(userId, text),
      reply: ctx.run.post,
      group: ctx.group,
    };
    try {
      await handler(view);
    } catch (err) {
      ctx.log.error({ err }, `${HANDLER_LABELS[kind]} handler failed`);
    }
    return next();
  };
}

function unknownCommand(plan: BotPlan, options: CompileOptions): Middleware<UpdateContext> {
  return (ctx) => {
    if (ctx.command === undefined || options.unknownCommandReply === false) return;
    // A bare command in a group may belong to another bot there.
    if (ctx.conversation.kind === 'group' && !ctx.addressedByName) return;
    // In a group a bare /help would bring every bot's list; point to ours.
    const help = ctx.conversation.kind === 'group' ? `/help@${plan.name}` : '/help';
    ctx.reply(`unknown command /${ctx.command} — try ${help}`);
  };
}

function guardCheck(plan: BotPlan, guard: PlannedGuard): Guard {
  if (guard.kind === 'check') return guard.check;
  // The group's committer (as of this message) or one of `admins`.
  return (ctx) =>
    plan.admins.has(ctx.sender) || (ctx.group !== undefined && ctx.group.committer === ctx.sender);
}

function refusal(cmd: PlannedCommand, conversation: Conversation): string {
  if (cmd.guard?.kind !== 'group-admin') return `you are not allowed to use /${cmd.name}`;
  return conversation.kind === 'group'
    ? `only the group's committer or an admin of this bot may use /${cmd.name}`
    : `only an admin of this bot may use /${cmd.name}`;
}

function builtInHelp(plan: BotPlan): BoundHandler {
  const bot = {
    name: plan.name,
    ...(plan.description !== undefined ? { description: plan.description } : {}),
  };
  // In a group several bots may answer /help: show the addressed form that reaches this one.
  return (ctx) => {
    const c = ctx as BotContext;
    return helpAnswer(
      bot,
      plan.commandInfos,
      c.argsText,
      'help',
      c.conversation.kind === 'group' ? { addressAs: plan.name } : {},
    );
  };
}
