/**
 * Decorators record metadata and check their arguments when applied; they run nothing. A
 * BotRuntime reads the metadata of the instances it is given (STYLE.md §4). Written for TypeScript's
 * legacy decorators (`experimentalDecorators`).
 */
import { ConfigError } from '../relay/errors.js';
import { parseArgSpec, type Args, type ArgsOf } from './args.js';
import type { BotContext, MembersContext, MembershipContext } from './context.js';
import { MAX_CONTENT_ID_LENGTH, MAX_REACTION_BYTES } from '../relay/content-types.js';
import {
  ACTIONS,
  BOT,
  COMMANDS,
  REACTIONS,
  ATTACHMENTS,
  ERROR,
  JOIN,
  LEAVE,
  MEMBERS,
  MESSAGES,
  BOT_NAME_PATTERN,
  MetadataKey,
  type BotClass,
  type MessageFilter,
} from './metadata.js';
import { normalizeGuardRef, type GuardRef } from './guards.js';
import { GROUP_COMMAND_MODES, type GroupCommandMode } from './parser.js';
import type { TaskCommandOptions, TaskContext } from './task-types.js';
import { resolveTyping, type TypingOption } from './typing.js';

export { readBotMetadata } from './metadata.js';

const COMMAND_NAME = /^[a-z][a-z0-9_]{0,31}$/;

/** The @Bot options: the bot's name, its description, and which commands it answers in groups. */
export interface BotOptions {
  /** How `/cmd@name` addresses the bot: a letter, then letters, digits, _ or -, 64 at most. */
  name: string;
  description?: string;
  /**
   * 'addressed-only': in groups, answer only `/cmd@name`, not a bare `/cmd` that other bots there
   * may also answer. Default 'all' (PROTOCOL.md §9); BotRuntime's option of the same name wins.
   */
  groupCommands?: GroupCommandMode;
  /**
   * Automatic typing while a handler runs longer than `afterMs` (default 1000), repeated every
   * `everyMs` (default 5000); `false` turns it off. It commits the message early (see ctx.typing()).
   */
  typing?: TypingOption;
}

/** The @OnCommand options: aliases, the /help description, the `args` spec and a guard. */
export interface CommandOptions<S extends string = string> {
  aliases?: readonly string[];
  /** One line for /help. */
  description?: string;
  /** The argument spec, e.g. `'<minutes:int> <text...>'` (see args.ts). */
  args?: S;
  /**
   * Checked before the arguments are parsed; false → a refusal reply. A function, `groupAdmin`
   * (the group's committer or one of BotRuntime's `admins`), or `namedGuard('admin')` for a guard
   * given to BotRuntime's `guards`; the strings 'group-admin' and 'admin' are shorthands (guards.ts).
   */
  guard?: GuardRef;
  /**
   * Makes the command a durable task (tasks.ts): answered at once with a `task` message, its
   * handler (given a TaskContext) runs beyond the handler time limit and its return value is the
   * result. `true` or `{ onRestart: 'resume' | 'fail' }` (default 'fail').
   */
  task?: boolean | TaskCommandOptions;
}

/** CommandOptions of a task command: its handler takes a TaskContext. */
export interface TaskCommandDecoratorOptions<S extends string = string> extends CommandOptions<S> {
  task: true | TaskCommandOptions;
}

// A handler may declare any session type; the args type is what the decorator checks.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Handler<A> = (ctx: BotContext<A, any>) => unknown;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ErrorHandler = (err: Error, ctx: BotContext<any, any>) => unknown;
type TaskHandler<A> = (ctx: TaskContext<A>) => unknown;

/** Generic in the method type: TypedPropertyDescriptor is invariant, so a fixed type would reject most methods. */
type MethodDecorator<Bound> = <M extends Bound>(
  target: object,
  key: string | symbol,
  descriptor: TypedPropertyDescriptor<M>,
) => void;

function describe(target: object, key: string | symbol): string {
  const cls = typeof target === 'function' ? target.name : target.constructor.name;
  return `${cls}.${String(key)}`;
}

/** The class a method decorator was applied to, after checking it is an instance method. */
function ownerOf(decorator: string, target: object, key: unknown, descriptor: unknown): BotClass {
  if (typeof key === 'object' && key !== null && 'kind' in key) {
    throw new ConfigError(`${decorator} needs "experimentalDecorators": true in tsconfig.json`);
  }
  const where = describe(target, key as string | symbol);
  if (typeof target === 'function') {
    throw new ConfigError(`${decorator} on static ${where}: handlers must be instance methods`);
  }
  const value = (descriptor as PropertyDescriptor | undefined)?.value;
  if (typeof value !== 'function') throw new ConfigError(`${decorator} on ${where}, which is not a method`);
  return target.constructor as BotClass;
}

function checkCommandName(name: unknown, what: string): string {
  if (typeof name !== 'string' || !COMMAND_NAME.test(name)) {
    throw new ConfigError(
      `${what} ${JSON.stringify(name)} is invalid: use 1-32 lowercase letters, digits or _, starting with a letter (e.g. "remind")`,
    );
  }
  return name;
}

/** Class decorator: names a bot and describes it for /help. */
export function Bot(options: BotOptions): <T extends BotClass>(cls: T) => void {
  if (typeof options?.name !== 'string' || !BOT_NAME_PATTERN.test(options.name)) {
    throw new ConfigError(
      `@Bot name ${JSON.stringify(options?.name)} is invalid: start with a letter, then letters, digits, _ or - (64 at most)`,
    );
  }
  if (options.description !== undefined && typeof options.description !== 'string') {
    throw new ConfigError('@Bot description must be a string');
  }
  if (options.groupCommands !== undefined && !GROUP_COMMAND_MODES.includes(options.groupCommands)) {
    throw new ConfigError(
      `@Bot groupCommands ${JSON.stringify(options.groupCommands)} is invalid: use ${GROUP_COMMAND_MODES.map((m) => `'${m}'`).join(' or ')}`,
    );
  }
  if (options.typing !== undefined) resolveTyping(options.typing);
  const info = {
    name: options.name,
    ...(options.typing !== undefined ? { typing: options.typing } : {}),
    ...(options.description !== undefined ? { description: options.description } : {}),
    ...(options.groupCommands !== undefined ? { groupCommands: options.groupCommands } : {}),
  };
  return (cls) => {
    if (BOT.get(cls)) throw new ConfigError(`@Bot is applied twice to ${cls.name}; keep one`);
    BOT.set(cls, info);
  };
}

/**
 * A command handler. With `args`, the method's `ctx.args` type is checked against the spec:
 * `@OnCommand('remind', { args: '<minutes:int> <text...>' }) remind(ctx: BotContext<{ minutes: number; text: string }>)`.
 * A string returned by the handler is sent as a reply.
 */
export function OnCommand<const S extends string = string>(
  name: string,
  options: TaskCommandDecoratorOptions<S>,
): MethodDecorator<TaskHandler<ArgsOf<S>>>;
export function OnCommand<const S extends string = string>(
  name: string,
  options?: CommandOptions<S>,
): MethodDecorator<Handler<ArgsOf<S>>>;
export function OnCommand<const S extends string = string>(
  name: string,
  options: CommandOptions<S> = {},
): MethodDecorator<Handler<ArgsOf<S>>> {
  checkCommandName(name, '@OnCommand name');
  const aliases = (options.aliases ?? []).map((a) => checkCommandName(a, `@OnCommand('${name}') alias`));
  const names = [name, ...aliases];
  const repeated = names.find((n, i) => names.indexOf(n) !== i);
  if (repeated !== undefined)
    throw new ConfigError(`@OnCommand('${name}') lists "${repeated}" twice; remove one`);
  if (options.args !== undefined && typeof options.args !== 'string') {
    throw new ConfigError(`@OnCommand('${name}') args must be a spec string like '<minutes:int> <text...>'`);
  }
  const args = options.args === undefined ? undefined : parseArgSpec(options.args, name);
  const guard = options.guard;
  if (guard !== undefined && normalizeGuardRef(guard) === undefined) {
    throw new ConfigError(
      `@OnCommand('${name}') guard must be a function or the name of a guard given to BotRuntime`,
    );
  }
  const task = taskOption(name, options.task);
  return (target, key, descriptor) => {
    const cls = ownerOf('@OnCommand', target, key, descriptor);
    for (const other of COMMANDS.get(cls) ?? []) {
      const clash = names.find((n) => n === other.name || other.aliases.includes(n));
      if (clash !== undefined) {
        throw new ConfigError(
          `/${clash} is declared twice in ${cls.name} (${String(other.method)} and ${String(key)}); rename one or drop the alias`,
        );
      }
    }
    MetadataKey.push(COMMANDS, cls, {
      method: key,
      name,
      aliases,
      args,
      ...(options.description !== undefined ? { description: options.description } : {}),
      ...(options.args !== undefined ? { argsSpec: options.args } : {}),
      ...(guard !== undefined ? { guard } : {}),
      ...(task ? { task } : {}),
    });
  };
}

function taskOption(
  name: string,
  task: boolean | TaskCommandOptions | undefined,
): Required<TaskCommandOptions> | undefined {
  if (task === undefined || task === false) return undefined;
  const onRestart = task === true ? 'fail' : (task?.onRestart ?? 'fail');
  if (typeof task !== 'boolean' && (typeof task !== 'object' || task === null))
    throw new ConfigError(`@OnCommand('${name}') task must be true or { onRestart: 'resume' | 'fail' }`);
  if (onRestart !== 'resume' && onRestart !== 'fail')
    throw new ConfigError(`@OnCommand('${name}') task.onRestart must be 'resume' or 'fail'`);
  return { onRestart };
}

/**
 * A handler for text that is not a command. Without a filter it takes every such message; handlers
 * are tried in declaration order and the first whose filter matches runs. In a group that is every
 * member's text, other bots' answers included: two bots answering all text would answer each other
 * without end, so filter on `ctx.conversation.kind` or on the text there.
 */
export function OnMessage(filter?: MessageFilter): MethodDecorator<Handler<Args>> {
  let stored: MessageFilter | undefined;
  if (filter instanceof RegExp) {
    // g and y make test()/exec() stateful across messages.
    stored = new RegExp(filter.source, filter.flags.replace(/[gy]/g, ''));
  } else if (typeof filter === 'function' || filter === undefined) {
    stored = filter;
  } else {
    throw new ConfigError('@OnMessage filter must be a RegExp or a function (ctx) => boolean');
  }
  return (target, key, descriptor) => {
    const cls = ownerOf('@OnMessage', target, key, descriptor);
    MetadataKey.push(MESSAGES, cls, { method: key, ...(stored ? { filter: stored } : {}) });
  };
}

/**
 * Handles `action` messages (a choice from ctx.actions() buttons): the one whose action id is `id`,
 * or any. ctx.action carries the id and the actions message's id.
 */
export function OnAction(id?: string): MethodDecorator<Handler<Args>> {
  if (id !== undefined && (typeof id !== 'string' || id.length === 0 || id.length > MAX_CONTENT_ID_LENGTH)) {
    throw new ConfigError(`@OnAction id must be 1..${MAX_CONTENT_ID_LENGTH} characters, as in ctx.actions()`);
  }
  return (target, key, descriptor) => {
    const cls = ownerOf('@OnAction', target, key, descriptor);
    MetadataKey.push(ACTIONS, cls, { method: key, ...(id !== undefined ? { id } : {}) });
  };
}

/** Handles `reaction` messages: those with `emoji`, or any. ctx.reaction carries emoji and message id. */
export function OnReaction(emoji?: string): MethodDecorator<Handler<Args>> {
  const bytes = typeof emoji === 'string' ? new TextEncoder().encode(emoji).length : 0;
  if (emoji !== undefined && (bytes === 0 || bytes > MAX_REACTION_BYTES)) {
    throw new ConfigError(`@OnReaction emoji must be 1..${MAX_REACTION_BYTES} UTF-8 bytes, e.g. '👍'`);
  }
  return (target, key, descriptor) => {
    const cls = ownerOf('@OnReaction', target, key, descriptor);
    MetadataKey.push(REACTIONS, cls, { method: key, ...(emoji !== undefined ? { emoji } : {}) });
  };
}

/**
 * Handles `attachment` messages whose file verified: those of `mediaType` (exact, or a prefix ending
 * in `/` such as `image/`), or any. The file is in ctx.attachments.
 */
export function OnAttachment(mediaType?: string): MethodDecorator<Handler<Args>> {
  if (mediaType !== undefined && (typeof mediaType !== 'string' || mediaType === '')) {
    throw new ConfigError(`@OnAttachment takes a media type or a prefix such as 'image/'`);
  }
  return (target, key, descriptor) => {
    const cls = ownerOf('@OnAttachment', target, key, descriptor);
    MetadataKey.push(ATTACHMENTS, cls, { method: key, ...(mediaType !== undefined ? { mediaType } : {}) });
  };
}

/**
 * Called when a peer starts a direct conversation with the bot, and when the bot joins a group:
 * invited by a member (ctx.invitedBy) or by creating it. In a group, ctx.reply() posts to it.
 */
export function OnJoin(): MethodDecorator<(ctx: MembershipContext) => unknown> {
  return (target, key, descriptor) =>
    MetadataKey.push(JOIN, ownerOf('@OnJoin', target, key, descriptor), key);
}

/** Called when the bot is no longer in a group: removed by its committer, or after leave(). */
export function OnLeave(): MethodDecorator<(ctx: MembershipContext) => unknown> {
  return (target, key, descriptor) =>
    MetadataKey.push(LEAVE, ownerOf('@OnLeave', target, key, descriptor), key);
}

/** Called when members were added to or removed from a group the bot stays in. */
export function OnMembers(): MethodDecorator<(ctx: MembersContext) => unknown> {
  return (target, key, descriptor) =>
    MetadataKey.push(MEMBERS, ownerOf('@OnMembers', target, key, descriptor), key);
}

/** `(err, ctx)`: answers a failed or timed-out handler instead of the default error reply. */
export function OnError(): MethodDecorator<ErrorHandler> {
  return (target, key, descriptor) => {
    const cls = ownerOf('@OnError', target, key, descriptor);
    const existing = ERROR.get(cls);
    if (existing !== undefined) {
      throw new ConfigError(
        `${cls.name} has two @OnError methods (${String(existing)}, ${String(key)}); keep one`,
      );
    }
    ERROR.set(cls, key);
  };
}
