/**
 * Typed metadata the decorators record on a bot class. Each kind of metadata has its own key: a
 * WeakMap from class constructor to value. A key can only be read with a class in hand, so nothing
 * here can enumerate bots, and two classes never see each other's entries.
 */
import type { ArgSpec } from './args.js';
import type { BotContext } from './context.js';
import type { GuardRef } from './guards.js';
import type { GroupCommandMode } from './parser.js';
import type { TaskCommandOptions } from './task-types.js';
import type { TypingOption } from './typing.js';

export { BUILT_IN_GUARDS, type BuiltInGuard, type Guard } from './guards.js';

/** Any class a bot can be made from (decorated with @Bot and the handler decorators). */
// Any class constructor, including ones whose constructor takes arguments.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type BotClass = abstract new (...args: any[]) => object;

/** Which messages an @OnMessage handler takes: a pattern on the text or a test on the context. */
export type MessageFilter = RegExp | ((ctx: BotContext) => boolean | Promise<boolean>);

/** A bot name must survive `/cmd@name` (PROTOCOL.md §9), whose target is letters, digits, _ and -. */
export const BOT_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

/** A bot's @Bot options as stored on its class. */
export interface BotInfo {
  readonly name: string;
  readonly description?: string;
  readonly groupCommands?: GroupCommandMode;
  readonly typing?: TypingOption;
}

/** One @OnCommand handler as stored on its class. */
export interface CommandMeta {
  readonly method: string | symbol;
  readonly name: string;
  readonly aliases: readonly string[];
  readonly description?: string;
  /** The spec as written; undefined means the command takes its text unparsed (ctx.argsText). */
  readonly argsSpec?: string;
  readonly args: readonly ArgSpec[] | undefined;
  /** As written on the decorator; the scanner resolves it (guards.ts). */
  readonly guard?: GuardRef;
  /** Set for a task command (`task: true` or its options): tasks.ts runs it. */
  readonly task?: Required<TaskCommandOptions>;
}

/** One @OnMessage handler as stored on its class. */
export interface MessageMeta {
  readonly method: string | symbol;
  readonly filter?: MessageFilter;
}

/** An @OnAction handler: `id` the action it answers, or every action. */
export interface ActionMeta {
  readonly method: string | symbol;
  readonly id?: string;
}

/** An @OnReaction handler: `emoji` the reaction it answers, or every reaction. */
export interface ReactionMeta {
  readonly method: string | symbol;
  readonly emoji?: string;
}

/** An @OnAttachment handler: `mediaType` a media type or prefix (`image/`) it answers, or every file. */
export interface AttachmentMeta {
  /** The decorated method. */
  readonly method: string | symbol;
  /** The media type, or a prefix ending in `/`; undefined: every file. */
  readonly mediaType?: string;
}

/** Everything the decorators recorded on a bot class (readBotMetadata). */
export interface BotMetadata {
  readonly bot: BotInfo | undefined;
  readonly commands: readonly CommandMeta[];
  readonly messages: readonly MessageMeta[];
  readonly actions: readonly ActionMeta[];
  readonly reactions: readonly ReactionMeta[];
  readonly attachments: readonly AttachmentMeta[];
  readonly join: readonly (string | symbol)[];
  readonly leave: readonly (string | symbol)[];
  readonly members: readonly (string | symbol)[];
  readonly error: string | symbol | undefined;
}

export class MetadataKey<T> {
  private readonly values = new WeakMap<object, T>();

  constructor(readonly description: string) {}

  get(cls: object): T | undefined {
    return this.values.get(cls);
  }

  set(cls: object, value: T): void {
    this.values.set(cls, value);
  }

  /** Appends to a list-valued key. */
  static push<E>(key: MetadataKey<E[]>, cls: object, item: E): void {
    const list = key.get(cls);
    if (list) list.push(item);
    else key.set(cls, [item]);
  }
}

export const BOT = new MetadataKey<BotInfo>('@Bot');
export const COMMANDS = new MetadataKey<CommandMeta[]>('@OnCommand');
export const MESSAGES = new MetadataKey<MessageMeta[]>('@OnMessage');
export const ACTIONS = new MetadataKey<ActionMeta[]>('@OnAction');
export const REACTIONS = new MetadataKey<ReactionMeta[]>('@OnReaction');
export const ATTACHMENTS = new MetadataKey<AttachmentMeta[]>('@OnAttachment');
export const JOIN = new MetadataKey<(string | symbol)[]>('@OnJoin');
export const LEAVE = new MetadataKey<(string | symbol)[]>('@OnLeave');
export const MEMBERS = new MetadataKey<(string | symbol)[]>('@OnMembers');
export const ERROR = new MetadataKey<string | symbol>('@OnError');

/**
 * What the decorators recorded on exactly this class. Decorators on a base class are not inherited:
 * a bot's handlers are the ones written on it.
 */
export function readBotMetadata(cls: BotClass): BotMetadata {
  return {
    bot: BOT.get(cls),
    commands: [...(COMMANDS.get(cls) ?? [])],
    messages: [...(MESSAGES.get(cls) ?? [])],
    actions: [...(ACTIONS.get(cls) ?? [])],
    reactions: [...(REACTIONS.get(cls) ?? [])],
    attachments: [...(ATTACHMENTS.get(cls) ?? [])],
    join: [...(JOIN.get(cls) ?? [])],
    leave: [...(LEAVE.get(cls) ?? [])],
    members: [...(MEMBERS.get(cls) ?? [])],
    error: ERROR.get(cls),
  };
}
