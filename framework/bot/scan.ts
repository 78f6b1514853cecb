/**
 * The scanner: bot instances and the runtime's options → a BotPlan. Pure (no client, no timers, no
 * I/O) and the one place where what the decorators recorded is checked against the whole bot: the
 * name, command clashes across instances, guards resolved to typed form, one @OnError, the time
 * limit. compile.ts turns the plan into middleware; the runtime only runs it.
 */
import { ConfigError } from '../relay/errors.js';
import { parseArgSpec, usageLine, type ArgSpec } from './args.js';
import { userIdSet } from './group.js';
import { BUILT_IN_GUARDS, normalizeGuardRef, type Guard, type PlannedGuard } from './guards.js';
import type { CommandInfo } from './help.js';
import {
  BOT_NAME_PATTERN,
  readBotMetadata,
  type BotClass,
  type BotInfo,
  type CommandMeta,
  type MessageFilter,
} from './metadata.js';
import { GROUP_COMMAND_MODES, type GroupCommandMode } from './parser.js';
import { collectPlugins, type Plugin } from './plugin.js';
import type { Middleware } from './composer.js';
import type { BotContext } from './context.js';
import type { TaskCommandOptions } from './task-types.js';
import { resolveTyping, type TypingOption, type TypingPlan } from './typing.js';

/** How long a handler may run before it is abandoned and the error reply sent (ms). */
export const DEFAULT_HANDLER_TIMEOUT_MS = 10_000;

/** A decorated method bound to its instance. */
export type BoundHandler = (...args: unknown[]) => unknown;

/** One command of the plan: its name, aliases, argument spec, usage, guard and bound handler. */
export interface PlannedCommand {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly description?: string;
  /** undefined: the command takes its text unparsed (ctx.argsText). */
  readonly args: readonly ArgSpec[] | undefined;
  readonly usage: string;
  readonly guard: PlannedGuard | undefined;
  /** undefined for the built-in /help, which compile.ts supplies. */
  readonly handler: BoundHandler | undefined;
  /** Set for a task command: its handler runs as a durable task (tasks.ts). */
  readonly task?: Required<TaskCommandOptions>;
}

/** An @OnMessage handler with its filter, bound to its instance. */
export interface PlannedMessageHandler {
  readonly filter: MessageFilter | undefined;
  readonly handler: BoundHandler;
}

/** The membership updates a bot can handle: @OnJoin, @OnLeave, @OnMembers. */
/** An @OnAction handler: `id` undefined answers every action. */
export interface PlannedActionHandler {
  readonly id: string | undefined;
  readonly handler: BoundHandler;
}

/** An @OnReaction handler: `emoji` undefined answers every reaction. */
export interface PlannedReactionHandler {
  readonly emoji: string | undefined;
  readonly handler: BoundHandler;
}

/** An @OnAttachment handler: `mediaType` undefined answers every file. */
export interface PlannedAttachmentHandler {
  /** The media type, or a prefix ending in `/`; undefined: every file. */
  readonly mediaType: string | undefined;
  /** The bound method. */
  readonly handler: BoundHandler;
}

/** The membership updates a bot can handle: @OnJoin, @OnLeave, @OnMembers. */
export type MembershipKind = 'join' | 'leave' | 'members';

/** What scanBots() read from the bot classes: everything the compiler needs, checked once. */
export interface BotPlan {
  readonly name: string;
  readonly description?: string;
  readonly groupCommands: GroupCommandMode;
  readonly handlerTimeoutMs: number;
  /** Admitted by the built-in group-admin guard (lowercase user ids). */
  readonly admins: ReadonlySet<string>;
  /** Every command once, in declaration order; the built-in /help (when on) last. */
  readonly commands: readonly PlannedCommand[];
  readonly messages: readonly PlannedMessageHandler[];
  readonly actions: readonly PlannedActionHandler[];
  readonly reactions: readonly PlannedReactionHandler[];
  /** @OnAttachment handlers, in declaration order. */
  readonly attachments: readonly PlannedAttachmentHandler[];
  /** Automatic typing while a handler runs, or false. */
  readonly typing: TypingPlan;
  readonly membership: Readonly<Record<MembershipKind, readonly BoundHandler[]>>;
  readonly onError: BoundHandler | undefined;
  /** The plugins' middleware, in the order given; it runs before use()'s. */
  readonly middleware: readonly Middleware<BotContext>[];
  /** What ctx.bot.commands and /help show. */
  readonly commandInfos: readonly CommandInfo[];
}

/** What the scanner reads of BotRuntimeOptions. */
export interface ScanOptions {
  name?: string;
  groupCommands?: GroupCommandMode;
  handlerTimeoutMs?: number;
  guards?: Record<string, Guard>;
  admins?: readonly string[];
  help?: boolean;
  /** Middleware, guard providers and handler instances (plugin.ts). */
  plugins?: readonly Plugin[];
  /** Overrides the @Bot typing option. */
  typing?: TypingOption;
}

/** Reads the decorators of bot instances (and plugins) into a BotPlan, validating it; no I/O. */
export function scanBots(bots: object | readonly object[], options: ScanOptions = {}): BotPlan {
  const given: readonly object[] = Array.isArray(bots) ? bots : [bots];
  if (given.length === 0) throw new ConfigError('BotRuntime needs at least one bot instance');
  const admins = userIdSet(options.admins, 'BotRuntime admins') ?? new Set<string>();
  const plugins = collectPlugins(options.plugins, options.guards);
  const guards = plugins.guards;
  checkGuardOption(guards);
  const instances = [...given, ...plugins.handlers];
  const infos: BotInfo[] = [];
  const commands: PlannedCommand[] = [];
  const messages: PlannedMessageHandler[] = [];
  const actions: PlannedActionHandler[] = [];
  const reactions: PlannedReactionHandler[] = [];
  const attachments: PlannedAttachmentHandler[] = [];
  const membership: Record<MembershipKind, BoundHandler[]> = { join: [], leave: [], members: [] };
  const errorHandlers: BoundHandler[] = [];
  for (const instance of instances) {
    if (typeof instance !== 'object' || instance === null) {
      throw new ConfigError('BotRuntime takes instances (new MyBot()), not classes or other values');
    }
    const cls = instance.constructor as BotClass;
    const meta = readBotMetadata(cls);
    const handlers =
      meta.commands.length +
      meta.messages.length +
      meta.actions.length +
      meta.reactions.length +
      meta.attachments.length +
      meta.join.length +
      meta.leave.length +
      meta.members.length;
    if (!meta.bot && handlers === 0 && meta.error === undefined) {
      throw new ConfigError(
        `${cls.name} has no @Bot or handler decorators; decorate the class and its methods`,
      );
    }
    if (meta.bot) infos.push(meta.bot);
    const bind = (method: string | symbol): BoundHandler => bindMethod(instance, method, cls.name);
    for (const c of meta.commands) commands.push(planCommand(c, bind(c.method), guards));
    for (const m of meta.messages) messages.push({ filter: m.filter, handler: bind(m.method) });
    for (const a of meta.actions) actions.push({ id: a.id, handler: bind(a.method) });
    for (const r of meta.reactions) reactions.push({ emoji: r.emoji, handler: bind(r.method) });
    for (const a of meta.attachments) attachments.push({ mediaType: a.mediaType, handler: bind(a.method) });
    for (const m of meta.join) membership.join.push(bind(m));
    for (const m of meta.leave) membership.leave.push(bind(m));
    for (const m of meta.members) membership.members.push(bind(m));
    if (meta.error !== undefined) errorHandlers.push(bind(meta.error));
  }
  if (errorHandlers.length > 1)
    throw new ConfigError('more than one @OnError among the bot instances; keep one');
  const info = infos[0];
  const hasHelp = commands.some((c) => c.name === 'help' || c.aliases.includes('help'));
  if (!hasHelp && options.help !== false) commands.push(builtInHelp());
  checkClashes(commands);
  return {
    name: resolveName(infos, options.name),
    ...(info?.description !== undefined ? { description: info.description } : {}),
    groupCommands: resolveGroupCommands(infos, options.groupCommands),
    handlerTimeoutMs: resolveTimeout(options.handlerTimeoutMs),
    admins,
    commands,
    messages,
    actions,
    reactions,
    attachments,
    typing: resolveTyping(options.typing ?? infos.find((i) => i.typing !== undefined)?.typing),
    membership,
    onError: errorHandlers[0],
    middleware: plugins.middleware,
    commandInfos: commands.map((c): CommandInfo => ({
      name: c.name,
      aliases: c.aliases,
      usage: c.usage,
      guarded: c.guard !== undefined,
      ...(c.description !== undefined ? { description: c.description } : {}),
    })),
  };
}

/** The plan's commands by name and by alias. */
export function commandIndex(plan: BotPlan): ReadonlyMap<string, PlannedCommand> {
  const index = new Map<string, PlannedCommand>();
  for (const c of plan.commands) for (const n of [c.name, ...c.aliases]) index.set(n, c);
  return index;
}

function bindMethod(instance: object, method: string | symbol, className: string): BoundHandler {
  const fn = (instance as Record<string | symbol, unknown>)[method];
  if (typeof fn !== 'function') {
    throw new ConfigError(`${className}: ${String(method)} is not a method of the instance`);
  }
  return (...args) => (fn as BoundHandler).apply(instance, args);
}

function checkGuardOption(guards: Readonly<Record<string, Guard>>): void {
  for (const name of BUILT_IN_GUARDS) {
    if (Object.hasOwn(guards, name)) {
      throw new ConfigError(
        `guards.${name} is built in; drop it from guards (configure it with { admins }) or give your guard another name`,
      );
    }
  }
}

function planCommand(
  meta: CommandMeta,
  handler: BoundHandler,
  guards: Readonly<Record<string, Guard>>,
): PlannedCommand {
  return {
    name: meta.name,
    aliases: meta.aliases,
    ...(meta.description !== undefined ? { description: meta.description } : {}),
    args: meta.args,
    usage: usageLine(meta.name, meta.args ?? []),
    guard: planGuard(meta, guards),
    handler,
    ...(meta.task ? { task: meta.task } : {}),
  };
}

function planGuard(meta: CommandMeta, guards: Readonly<Record<string, Guard>>): PlannedGuard | undefined {
  if (meta.guard === undefined) return undefined;
  const ref = normalizeGuardRef(meta.guard);
  if (ref === undefined)
    throw new ConfigError(`/${meta.name} has a guard that is not a function or a guard name`);
  if (ref.kind !== 'named') return ref;
  const check = Object.hasOwn(guards, ref.name) ? guards[ref.name] : undefined;
  if (typeof check !== 'function') {
    throw new ConfigError(
      `/${meta.name} uses guard "${ref.name}", but BotRuntime has none by that name; pass { guards: { ${ref.name}: (ctx) => … } }`,
    );
  }
  return { kind: 'check', check, name: ref.name };
}

function builtInHelp(): PlannedCommand {
  return {
    name: 'help',
    aliases: [],
    description: 'this list; /help <command> shows how to use one',
    // The topic is read by helpAnswer, which never fails: /help with anything after it answers.
    args: undefined,
    usage: usageLine('help', parseArgSpec('[command]', 'help')),
    guard: undefined,
    handler: undefined,
  };
}

function checkClashes(commands: readonly PlannedCommand[]): void {
  const seen = new Set<string>();
  for (const c of commands) {
    for (const n of [c.name, ...c.aliases]) {
      if (seen.has(n)) {
        throw new ConfigError(`/${n} is declared by two of the bot instances; rename one or drop the alias`);
      }
      seen.add(n);
    }
  }
}

function resolveName(infos: readonly BotInfo[], given: string | undefined): string {
  const names = [...new Set(infos.map((i) => i.name))];
  const name = given ?? (names.length === 1 ? names[0] : undefined);
  if (name === undefined) {
    throw new ConfigError(
      names.length === 0
        ? 'the bot has no name: add @Bot({ name }) to the class or pass { name } to BotRuntime'
        : `the bot instances disagree on the name (${names.join(', ')}); pass { name } to BotRuntime`,
    );
  }
  if (!BOT_NAME_PATTERN.test(name)) {
    throw new ConfigError(
      `bot name ${JSON.stringify(name)} is invalid: start with a letter, then letters, digits, _ or - (64 at most)`,
    );
  }
  return name;
}

function resolveGroupCommands(
  infos: readonly BotInfo[],
  given: GroupCommandMode | undefined,
): GroupCommandMode {
  const mode = given ?? infos.find((i) => i.groupCommands)?.groupCommands ?? 'all';
  if (!GROUP_COMMAND_MODES.includes(mode)) {
    throw new ConfigError(
      `groupCommands ${JSON.stringify(mode)} is invalid: use ${GROUP_COMMAND_MODES.map((m) => `'${m}'`).join(' or ')}`,
    );
  }
  return mode;
}

function resolveTimeout(given: number | undefined): number {
  const timeout = given ?? DEFAULT_HANDLER_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeout) || timeout <= 0) {
    throw new ConfigError(`handlerTimeoutMs must be a positive whole number of milliseconds, got ${timeout}`);
  }
  return timeout;
}
