/**
 * One bot's runtime: reads the decorator metadata of the instances it is given (once, at
 * construction), compiles their handlers to middleware and runs each message through
 *
 *   user middleware (use()) → command router → @OnMessage router → unknown-command answer
 *
 * handle() never throws: a failing or slow handler is logged and answered, and the message still
 * counts as processed, so one bad message cannot be redelivered forever.
 *
 * attach(client) makes the runtime the client's transactional message handler: replies, ctx.session
 * and ctx.tx writes commit together with the message. It also runs @OnJoin when a peer opens a
 * direct conversation with us or we join a group, @OnLeave when we leave one, @OnMembers when a
 * group's members change, and (given a store) the scheduler that sends ctx.schedule() jobs.
 *
 * Groups (PROTOCOL.md §9): `/cmd@name` is for the bot named (by name or user id), and another
 * bot's command is ignored without a word; a bare `/cmd` in a group is answered by every bot that
 * has it, unless `groupCommands: 'addressed-only'`.
 */
import { pino, type Logger } from 'pino';
import type { UserIdHex } from '../relay/brand.js';
import type { GroupChange, ReceivedMessage, RelayClient, SessionEvent } from '../relay/client.js';
import { ArgumentError, ConfigError, HandlerError } from '../relay/errors.js';
import { parseArgSpec, usageLine, type ArgSpec, type Args } from './args.js';
import { compose, run, Composer, type Middleware, type MiddlewareLike } from './composer.js';
import {
  conversationOf,
  groupConversation,
  messageContext,
  replyTo,
  ReplyGate,
  type BotContext,
  type BotSelf,
  type Conversation,
  type HandleDeps,
  type MessageContext,
  type MembersContext,
  type MembersEvent,
  type MembershipContext,
  type MembershipEvent,
  type ReplyContent,
  type ReplyFn,
} from './context.js';
import { gatedTransaction, noTransaction, transactionalSessionStore, type BotTransaction } from './data.js';
import { ParseError } from './errors.js';
import {
  checkUserIds,
  GROUP_API_METHODS,
  groupApiOf,
  groupHandle,
  type GroupApi,
  type GroupEvent,
  type GroupInfo,
  type GroupOpRunner,
  userIdSet,
} from './group.js';
import { helpAnswer, type CommandInfo } from './help.js';
import {
  BOT_NAME_PATTERN,
  BUILT_IN_GUARDS,
  readBotMetadata,
  type BotClass,
  type BotInfo,
  type CommandMeta,
  type Guard,
  type MessageFilter,
} from './metadata.js';
import {
  commandAudience,
  GROUP_COMMAND_MODES,
  parseArgs,
  parseCommandHead,
  type CommandHead,
  type GroupCommandMode,
} from './parser.js';
import { encodeJob, jobKey, jobPrefix, JobScheduler, type JobSource } from './scheduler.js';
import { LazySession, type SessionOptions } from './session.js';

/** How long a handler may run before it is abandoned and the error reply sent (ms). */
export const DEFAULT_HANDLER_TIMEOUT_MS = 10_000;
/** The reply sent when a handler fails and no @OnError handler answers. */
export const DEFAULT_ERROR_REPLY = 'Sorry, something went wrong.';

/** BotRuntime's options: name, replies to unknown commands and errors, handler time limit, logger, guards, admins, group behaviour, session, /help. */
export interface BotRuntimeOptions {
  /** The name `/cmd@name` matches; defaults to the @Bot name. */
  name?: string;
  /** Answer `unknown command /foo — try /help` (default true; in groups only to `/foo@us`). */
  unknownCommandReply?: boolean;
  /** Sent when a handler fails and no @OnError answers; false sends nothing. */
  errorReply?: string | false;
  handlerTimeoutMs?: number;
  logger?: Logger;
  /** Guards that commands name in `guard: 'admin'` ('group-admin' is built in). */
  guards?: Record<string, Guard>;
  /**
   * User ids admitted by the built-in `guard: 'group-admin'` everywhere; in a group it also admits
   * the group's committer.
   */
  admins?: readonly string[];
  /**
   * 'addressed-only': in groups, answer only `/cmd@name`, not a bare `/cmd`, which every bot in the
   * group that has it would answer. Default: the @Bot option, else 'all' (PROTOCOL.md §9).
   */
  groupCommands?: GroupCommandMode;
  /** Sent when a guard refuses; defaults to `you are not allowed to use /name` (or who may). */
  refusalReply?: string;
  /**
   * ctx.session: `initial` gives a new conversation's value. Attached, sessions live in the
   * message's transaction; `store` replaces that (MemorySessionStore for unit tests).
   */
  session?: SessionOptions;
  /** A built-in /help (and `/help <command>`) when the bot has no `help` command (default true). */
  help?: boolean;
  /** ms since the epoch, for ctx.schedule() and the scheduler; default Date.now. */
  clock?: () => number;
  /** How often the scheduler looks for due jobs (default 1000 ms). */
  scheduler?: { pollMs?: number };
}

/**
 * What attach() needs of a RelayClient. The group methods are optional so that a wrapper without
 * them still runs direct conversations; with all of them (GroupApi) the bot can work in groups.
 */
export type AttachableClient = Pick<RelayClient, 'userId' | 'send' | 'setMessageHandler' | 'on' | 'off'> & {
  /** When present, the scheduler waits for it to be true. */
  readonly connected?: boolean;
} & Partial<GroupApi>;

/** BotRuntime.attach()'s options: the store scheduled jobs are read from. */
export interface AttachOptions {
  /**
   * Where scheduled jobs are read (the client's RelayStore). Without it the scheduler does not run
   * and ctx.schedule() is a configuration error.
   */
  store?: JobSource;
}

interface Attachment {
  readonly client: AttachableClient;
  readonly deps: HandleDeps;
  readonly onSession: (s: SessionEvent) => void;
  readonly onGroup: (e: GroupEvent) => void;
  readonly onMessage: (m: ReceivedMessage) => void;
  readonly scheduler: JobScheduler | undefined;
}

type Invoke = (...args: unknown[]) => unknown;

interface Command {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly description?: string;
  readonly specs: readonly ArgSpec[] | undefined;
  readonly usage: string;
  readonly guard: Guard | undefined;
  /** Set for 'group-admin', whose refusal says who may use the command. */
  readonly builtInGuard?: 'group-admin';
  readonly invoke: (ctx: BotContext) => unknown;
}

interface MessageHandler {
  readonly filter: MessageFilter | undefined;
  readonly invoke: (ctx: BotContext) => unknown;
}

type Outcome = { ok: true } | { ok: false; error: unknown };

function bindMethod(instance: object, method: string | symbol, what: string): Invoke {
  const fn = (instance as Record<string | symbol, unknown>)[method];
  if (typeof fn !== 'function')
    throw new ConfigError(`${what}: ${String(method)} is not a method of the instance`);
  return (...args) => (fn as Invoke).apply(instance, args);
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new HandlerError(`handler threw a non-Error: ${String(e)}`);
}

/** A handler may return its answer instead of calling ctx.reply(). */
function answerWith(ctx: BotContext, result: unknown): void {
  if (typeof result === 'string') ctx.reply(result);
}

/** Lets the event's emitter (often inside a conversation lane) finish before a handler runs. */
function afterCurrentEvent(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

interface PendingGroupOp {
  readonly what: string;
  readonly op: () => Promise<void>;
  readonly change: { groupId: string; change: GroupChange };
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

/** Runs bot instances on a RelayClient: parses messages, runs middleware and handlers, commits replies. */
export class BotRuntime {
  readonly name: string;
  private readonly info: BotInfo | undefined;
  private readonly commands = new Map<string, Command>();
  private commandInfos: readonly CommandInfo[] = [];
  private readonly messageHandlers: MessageHandler[] = [];
  private readonly joinHandlers: Invoke[] = [];
  private readonly leaveHandlers: Invoke[] = [];
  private readonly membersHandlers: Invoke[] = [];
  private readonly errorHandler: Invoke | undefined;
  private readonly user = new Composer<BotContext>();
  private readonly chain: Middleware<MessageContext>;
  private readonly timeoutMs: number;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly admins: ReadonlySet<string>;
  private readonly groupCommands: GroupCommandMode;
  private attachment: Attachment | undefined;
  /** undefined outside attach(): unit tests may schedule into a MemoryDataStore. */
  private jobsEnabled: boolean | undefined;
  /** Membership handlers and deferred group changes: stop() waits for them. */
  private readonly background = new Set<Promise<void>>();

  constructor(
    bots: object | readonly object[],
    private readonly options: BotRuntimeOptions = {},
  ) {
    const instances: readonly object[] = Array.isArray(bots) ? bots : [bots];
    if (instances.length === 0) throw new ConfigError('BotRuntime needs at least one bot instance');
    this.admins = userIdSet(options.admins, 'BotRuntime admins') ?? new Set();
    for (const name of BUILT_IN_GUARDS) {
      if (options.guards && Object.hasOwn(options.guards, name)) {
        throw new ConfigError(
          `guards.${name} is built in; drop it from guards (configure it with { admins }) or give your guard another name`,
        );
      }
    }
    const errorHandlers: Invoke[] = [];
    const infos: BotInfo[] = [];
    for (const instance of instances) {
      if (typeof instance !== 'object' || instance === null) {
        throw new ConfigError('BotRuntime takes instances (new MyBot()), not classes or other values');
      }
      const cls = instance.constructor as BotClass;
      const meta = readBotMetadata(cls);
      const handlers =
        meta.commands.length +
        meta.messages.length +
        meta.join.length +
        meta.leave.length +
        meta.members.length;
      if (!meta.bot && handlers === 0 && meta.error === undefined) {
        throw new ConfigError(
          `${cls.name} has no @Bot or handler decorators; decorate the class and its methods`,
        );
      }
      if (meta.bot) infos.push(meta.bot);
      for (const c of meta.commands) this.addCommand(this.compileCommand(instance, cls.name, c));
      for (const m of meta.messages) {
        this.messageHandlers.push({ filter: m.filter, invoke: bindMethod(instance, m.method, cls.name) });
      }
      for (const m of meta.join) this.joinHandlers.push(bindMethod(instance, m, cls.name));
      for (const m of meta.leave) this.leaveHandlers.push(bindMethod(instance, m, cls.name));
      for (const m of meta.members) this.membersHandlers.push(bindMethod(instance, m, cls.name));
      if (meta.error !== undefined) errorHandlers.push(bindMethod(instance, meta.error, cls.name));
    }
    if (errorHandlers.length > 1)
      throw new ConfigError('more than one @OnError among the bot instances; keep one');
    this.errorHandler = errorHandlers[0];
    this.info = infos[0];
    this.name = this.resolveName(infos);
    this.groupCommands = this.resolveGroupCommands(infos);
    const timeout = options.handlerTimeoutMs ?? DEFAULT_HANDLER_TIMEOUT_MS;
    if (!Number.isSafeInteger(timeout) || timeout <= 0) {
      throw new ConfigError(
        `handlerTimeoutMs must be a positive whole number of milliseconds, got ${timeout}`,
      );
    }
    this.timeoutMs = timeout;
    if (!this.commands.has('help') && options.help !== false) this.addBuiltInHelp();
    this.commandInfos = [...new Set(this.commands.values())].map((c): CommandInfo => ({
      name: c.name,
      aliases: c.aliases,
      usage: c.usage,
      guarded: c.guard !== undefined,
      ...(c.description !== undefined ? { description: c.description } : {}),
    }));
    this.now = options.clock ?? Date.now;
    this.log = (options.logger ?? pino({ level: 'silent' })).child({ bot: this.name });
    const user: Middleware<MessageContext> = this.user.middleware();
    this.chain = compose<MessageContext>([user, this.routeCommand, this.routeMessage, this.unknownCommand]);
  }

  /** Middleware that runs before the handlers, in the order added (plugins, logging, rate limits). */
  use(...mw: MiddlewareLike<BotContext>[]): this {
    this.user.use(...mw);
    return this;
  }

  /** Every command once, in declaration order (the built-in /help last). */
  commandList(): readonly CommandInfo[] {
    return this.commandInfos;
  }

  /**
   * Makes this runtime the client's transactional message handler, runs @OnJoin when a peer starts
   * a direct conversation with us ('session' event, role 'joiner'), runs the group membership
   * handlers on the client's 'group' events and, given `{ store }`, starts the scheduler. Attach
   * before client.start(), so no message is committed without a handler.
   */
  attach(client: AttachableClient, options: AttachOptions = {}): void {
    if (this.attachment) throw new ConfigError('this BotRuntime is already attached; detach() it first');
    const groups = groupApiOf(client);
    // The client emits 'message' with the object it gave the handler, once that run committed.
    const committed = new WeakMap<ReceivedMessage, () => void>();
    const onMessage = (m: ReceivedMessage): void => {
      const run = committed.get(m);
      committed.delete(m);
      run?.();
    };
    const deps: HandleDeps = {
      selfId: client.userId,
      send: (userId, text) => client.send(userId, text),
      ...(groups ? { groups } : {}),
      afterCommit: (m, run) => void committed.set(m, run),
    };
    client.setMessageHandler((message, reply, tx) => this.handle(message, reply, deps, tx));
    const onSession = (s: SessionEvent): void => {
      if (s.role !== 'joiner') return;
      // Deferred: the event fires inside the conversation's lane, which ctx.send() would queue on.
      // Tracked from now, so stop() also waits for a handler that has not started yet.
      const event: MembershipEvent = {
        kind: 'join',
        userId: s.peer,
        conversation: { kind: 'direct', id: s.peer },
      };
      this.track(afterCurrentEvent().then(() => this.handleMembership(event, deps)));
    };
    // Deferred for the same reason: some group events fire inside the group's lane.
    const onGroup = (e: GroupEvent): void =>
      this.track(afterCurrentEvent().then(() => this.handleGroupEvent(e, deps)));
    client.on('session', onSession);
    client.on('group', onGroup);
    client.on('message', onMessage);
    let scheduler: JobScheduler | undefined;
    if (options.store) {
      scheduler = new JobScheduler({
        prefix: jobPrefix(this.name),
        source: options.store,
        send: (to, text, o) => client.send(to, text, o),
        now: this.now,
        log: this.log.child({ component: 'scheduler' }),
        ready: () => client.connected !== false,
        ...(this.options.scheduler?.pollMs !== undefined ? { pollMs: this.options.scheduler.pollMs } : {}),
      });
      scheduler.start();
    }
    this.jobsEnabled = scheduler !== undefined;
    this.attachment = { client, deps, onSession, onGroup, onMessage, scheduler };
  }

  /**
   * Stops the scheduler and waits for running @OnJoin/@OnLeave/@OnMembers handlers and for the
   * group changes message handlers asked for; the client keeps this runtime as its handler. Call
   * before client.stop().
   */
  async stop(): Promise<void> {
    await this.attachment?.scheduler?.stop();
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  /**
   * stop(), then removes the message handler and the event listeners. Stop the client first:
   * RelayClient commits a message that arrives while it has no handler without answering it.
   */
  async detach(): Promise<void> {
    const a = this.attachment;
    await this.stop();
    if (!a || this.attachment !== a) return;
    this.attachment = undefined;
    this.jobsEnabled = undefined;
    a.client.setMessageHandler(undefined);
    a.client.off('session', a.onSession);
    a.client.off('group', a.onGroup);
    a.client.off('message', a.onMessage);
  }

  /**
   * Creates a group of this bot and `members` (user ids) through the attached client; the same as
   * ctx.bot.createGroup() in a handler. Each invitation is sealed with proof of work, so this takes
   * a while for many members.
   */
  createGroup(members: readonly string[]): Promise<GroupInfo>;
  createGroup(name: string | undefined, members: readonly string[]): Promise<GroupInfo>;
  async createGroup(a: string | undefined | readonly string[], b?: readonly string[]): Promise<GroupInfo> {
    return this.createGroupWith(this.attachedDeps('createGroup()'), a, b);
  }

  /** The groups the bot is a member of, through the attached client. */
  async groups(): Promise<GroupInfo[]> {
    return this.requireGroups(this.attachedDeps('groups()'), 'groups()').groups();
  }

  /**
   * The transactional handler: replies go to `reply`; the session and ctx.tx writes go to `tx`.
   * RelayClient commits all of them with the message. Without `tx` (unit tests) ctx.session needs
   * `session.store` and ctx.tx refuses to be used.
   */
  async handle(
    message: ReceivedMessage,
    reply: ReplyFn,
    deps: HandleDeps,
    tx?: BotTransaction,
  ): Promise<void> {
    try {
      await this.process(message, reply, deps, tx);
    } catch (err) {
      // Only a bug in the runtime itself lands here; rethrowing would make the message poison.
      this.log.error({ err }, 'bot runtime failed on a message');
    }
  }

  /**
   * Runs @OnJoin, @OnLeave or @OnMembers handlers; failures are logged (there is no one to answer).
   * A group join or members change reads the group through `deps.groups` for ctx.group.
   */
  async handleMembership(event: MembershipEvent | MembersEvent, deps: HandleDeps): Promise<void> {
    if (this.membershipHandlers(event.kind).length === 0) return;
    const c = event.conversation;
    const log = this.membershipLog(event);
    const info =
      c.kind === 'group' && event.kind !== 'leave'
        ? await this.readGroupInfo(c.groupId, deps, log)
        : undefined;
    return this.runMembership(event, deps, info, log);
  }

  private membershipHandlers(kind: MembershipEvent['kind'] | MembersEvent['kind']): readonly Invoke[] {
    return kind === 'join' ? this.joinHandlers : kind === 'leave' ? this.leaveHandlers : this.membersHandlers;
  }

  private membershipLog(event: MembershipEvent | MembersEvent): Logger {
    return this.log.child({ event: event.kind, conversation: event.conversation.id });
  }

  /** Runs the handlers of `event`; `info` (read once by the caller) becomes ctx.group. */
  private async runMembership(
    event: MembershipEvent | MembersEvent,
    deps: HandleDeps,
    info: GroupInfo | undefined,
    log: Logger = this.membershipLog(event),
  ): Promise<void> {
    const handlers = this.membershipHandlers(event.kind);
    if (handlers.length === 0) return;
    const label = event.kind === 'join' ? '@OnJoin' : event.kind === 'leave' ? '@OnLeave' : '@OnMembers';
    const conversation = event.conversation;
    const group =
      info && deps.groups ? groupHandle(info, deps.groups, deps.selfId, (_what, op) => op()) : undefined;
    const post = async (r: string | ReplyContent): Promise<void> => {
      if (conversation.kind === 'direct') {
        await deps.send(conversation.id, typeof r === 'string' ? r : r.content);
        return;
      }
      if (event.kind === 'leave') {
        throw new HandlerError(
          `ctx.reply() in ${label}: the bot is no longer in group ${conversation.groupId}`,
        );
      }
      await this.requireGroups(deps, 'ctx.reply() in a group').sendToGroup(conversation.groupId, r);
    };
    const outside = {
      bot: this.self(deps),
      log,
      send: async (userId: string, text: string) => void (await deps.send(userId, text)),
      reply: post,
      group,
    };
    const ctx: MembershipContext | MembersContext = { ...event, ...outside };
    for (const handler of handlers) {
      const outcome = await this.limit(async () => void (await handler(ctx)), new AbortController());
      if (!outcome.ok) log.error({ err: outcome.error }, `${label} handler failed`);
    }
  }

  /** Maps the client's 'group' event to the membership handlers (PROTOCOL.md §9). */
  private async handleGroupEvent(e: GroupEvent, deps: HandleDeps): Promise<void> {
    const kind =
      e.kind === 'joined' || e.kind === 'created'
        ? 'join'
        : e.kind === 'left'
          ? 'leave'
          : e.kind === 'members'
            ? 'members'
            : undefined;
    // Reading the group costs a state decode; skip it when no one listens. 'rejoined' restores our
    // own state after falling behind: membership did not change.
    if (kind === undefined || this.membershipHandlers(kind).length === 0) return;
    const self = deps.selfId as UserIdHex;
    if (e.kind === 'left') {
      return this.runMembership(
        { kind: 'leave', userId: self, conversation: groupConversation(e), reason: e.reason },
        deps,
        undefined,
      );
    }
    // One read gives both the conversation (with the group's name) and ctx.group.
    const info = await deps.groups?.group(e.groupId).catch(() => undefined);
    switch (e.kind) {
      case 'members':
        // Without the group (we left meanwhile) there is no conversation to tell.
        if (!info) return;
        return this.runMembership(
          { kind: 'members', conversation: groupConversation(info), added: e.added, removed: e.removed },
          deps,
          info,
        );
      case 'joined':
      case 'created':
        return this.runMembership(
          {
            kind: 'join',
            userId: self,
            conversation: groupConversation(info ?? e),
            ...(e.kind === 'joined' ? { invitedBy: e.invitedBy } : {}),
          },
          deps,
          info,
        );
    }
  }

  /** The group as it is now; undefined (logged) when it cannot be read. */
  private async readGroupInfo(
    groupId: string,
    deps: HandleDeps,
    log: Logger,
  ): Promise<GroupInfo | undefined> {
    if (!deps.groups) return undefined;
    try {
      const info = await deps.groups.group(groupId);
      if (info) return info;
      log.warn('a group the bot is not a member of (any more): ctx.group is undefined');
    } catch (err) {
      log.warn({ err }, 'could not read the group: ctx.group is undefined');
    }
    return undefined;
  }

  private track(work: Promise<void>): void {
    const tracked: Promise<void> = work
      .catch((err: unknown) => this.log.error({ err }, 'background work of the runtime failed'))
      .finally(() => this.background.delete(tracked));
    this.background.add(tracked);
  }

  private self(deps: HandleDeps): BotSelf {
    return {
      name: this.name,
      userId: deps.selfId,
      commands: this.commandInfos,
      ...(this.info?.description !== undefined ? { description: this.info.description } : {}),
      createGroup: (a: string | undefined | readonly string[], b?: readonly string[]) =>
        this.createGroupWith(deps, a, b),
      groups: () => this.requireGroups(deps, 'ctx.bot.groups()').groups(),
    };
  }

  private async createGroupWith(
    deps: HandleDeps,
    a: string | undefined | readonly string[],
    b: readonly string[] | undefined,
  ): Promise<GroupInfo> {
    const named = typeof a === 'string' || a === undefined;
    const name = named ? a : undefined;
    const members = named ? b : a;
    if (members === undefined) {
      throw new ArgumentError('createGroup(name, members) needs the members: a list of user ids');
    }
    if (name !== undefined && (name.trim() === '' || name.length > 128)) {
      throw new ArgumentError('createGroup(): a group name has 1 to 128 characters');
    }
    const ids = members.length === 0 ? [] : checkUserIds(members, 'createGroup()', deps.selfId);
    const api = this.requireGroups(deps, 'createGroup()');
    return api.createGroup(ids, name !== undefined ? { name } : {});
  }

  private attachedDeps(what: string): HandleDeps {
    const deps = this.attachment?.deps;
    if (!deps) throw new ConfigError(`${what} needs a client: attach(client) the runtime first`);
    return deps;
  }

  private requireGroups(deps: HandleDeps, what: string): GroupApi {
    if (deps.groups) return deps.groups;
    throw new ConfigError(
      `${what} needs a client with groups: attach a RelayClient, or have your wrapper forward ${GROUP_API_METHODS.join(', ')}`,
    );
  }

  private async process(
    message: ReceivedMessage,
    reply: ReplyFn,
    deps: HandleDeps,
    rawTx: BotTransaction | undefined,
  ): Promise<void> {
    const conversation = conversationOf(message);
    // Ids only: message content stays out of logs.
    const log = this.log.child({
      conversation: conversation.id,
      sender: message.from,
      ...(message.content.id !== undefined ? { messageId: message.content.id } : {}),
    });
    const late = (): void => log.warn('a reply made after the handler finished was dropped');
    const gate = new ReplyGate(reply, late);
    let head: CommandHead | undefined;
    try {
      head = message.content.type === 'text' ? parseCommandHead(message.content.content) : undefined;
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      // In a group a malformed line may have been meant for another bot; stay quiet there.
      if (conversation.kind === 'direct') gate.push(replyTo(message, `${e.reason} — try /help`));
      return;
    }
    const audience =
      head &&
      commandAudience(head, { name: this.name, userId: deps.selfId }, conversation.kind, this.groupCommands);
    if (head && audience === 'ignore') {
      log.debug({ command: head.name }, 'command for another bot');
      return;
    }
    const pendingOps: PendingGroupOp[] = [];
    // A membership change needs the group's lane, which this message holds until it commits.
    const runAfterHandler: GroupOpRunner = (what, op, change) => {
      if (!gate.isOpen) throw new HandlerError(`${what} after the handler finished or timed out`);
      const done = new Promise<void>((resolve, reject) =>
        pendingOps.push({ what, op, change, resolve, reject }),
      );
      // Handlers are told not to await it; a failure is logged instead of crashing the process.
      done.catch(() => undefined);
      return done;
    };
    const info =
      conversation.kind === 'group' ? await this.readGroupInfo(conversation.groupId, deps, log) : undefined;
    const group =
      info && deps.groups ? groupHandle(info, deps.groups, deps.selfId, runAfterHandler) : undefined;
    const controller = new AbortController();
    const tx = rawTx ? gatedTransaction(rawTx, () => gate.isOpen) : noTransaction;
    const sessionStore =
      this.options.session?.store ?? (rawTx ? transactionalSessionStore(tx, this.name) : undefined);
    const session = new LazySession(conversation.id, sessionStore, this.options.session?.initial);
    const ctx = messageContext({
      message,
      conversation,
      command: head?.name,
      argsText: head?.argsText ?? '',
      bot: this.self(deps),
      deps,
      log: head ? log.child({ command: head.name }) : log,
      session,
      tx,
      schedule: (job) => {
        if (this.jobsEnabled === false) {
          throw new ConfigError(
            'ctx.schedule() needs the scheduler: attach the runtime with attach(client, { store })',
          );
        }
        const key = jobKey(this.name, job.dueAt);
        tx.saveData(key, encodeJob(job));
        return key;
      },
      now: this.now,
      gate,
      signal: controller.signal,
      addressedByName: audience === 'addressed',
      group,
    });
    // The session is saved inside the time limit: a hung store must not hold the conversation.
    let outcome = await this.limit(
      async () => {
        await run(this.chain, ctx);
        // A handler that finished after its time limit was already answered as a failure.
        if (!controller.signal.aborted) await session.save();
      },
      controller,
      gate,
    );
    gate.close();
    if (!outcome.ok && controller.signal.aborted && pendingOps.length > 0) {
      outcome = {
        ok: false,
        error: new HandlerError(
          `handler did not finish within ${this.timeoutMs} ms; if it awaits ctx.group.add(), remove() or leave(), do not: they start only after the handler returns`,
        ),
      };
    }
    this.settleGroupOps(pendingOps, outcome.ok, message, deps, log, rawTx);
    if (!outcome.ok) await this.recover(outcome.error, ctx, reply, late);
  }

  /** Runs the membership changes a handler asked for, in order, once its message is committed. */
  private settleGroupOps(
    ops: readonly PendingGroupOp[],
    handlerOk: boolean,
    message: ReceivedMessage,
    deps: HandleDeps,
    log: Logger,
    tx?: BotTransaction,
  ): void {
    if (ops.length === 0) return;
    if (!handlerOk) {
      for (const o of ops) o.reject(new HandlerError(`${o.what} was not done: the handler failed`));
      return;
    }
    const record = tx?.groupChange?.bind(tx);
    if (record && deps.afterCommit) {
      // Committed with the message; the client carries the changes out (and again after a restart).
      for (const o of ops) record(o.change.groupId, o.change.change);
      deps.afterCommit(message, () => ops.forEach((o) => o.resolve()));
      return;
    }
    const start = (): void =>
      this.track(
        afterCurrentEvent().then(async () => {
          for (const o of ops) {
            try {
              await o.op();
              o.resolve();
            } catch (err) {
              log.error({ err }, `${o.what} failed`);
              o.reject(err);
            }
          }
        }),
      );
    if (deps.afterCommit) deps.afterCommit(message, start);
    else start();
  }

  /** Runs `work` under the time limit; on timeout closes `gate` at once so late replies are dropped. */
  private async limit(
    work: () => Promise<void>,
    controller: AbortController,
    gate?: ReplyGate,
  ): Promise<Outcome> {
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const expired = new Promise<Outcome>((resolve) => {
      timer = setTimeout(() => {
        timedOut = true;
        gate?.close();
        controller.abort();
        resolve({ ok: false, error: new HandlerError(`handler did not finish within ${this.timeoutMs} ms`) });
      }, this.timeoutMs);
    });
    const finished = Promise.resolve()
      .then(work)
      .then(
        (): Outcome => ({ ok: true }),
        (error: unknown): Outcome => {
          if (timedOut) this.log.warn({ err: error }, 'a handler failed after its time limit');
          return { ok: false, error };
        },
      );
    try {
      return await Promise.race([finished, expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async recover(
    error: unknown,
    ctx: MessageContext,
    reply: ReplyFn,
    late: () => void,
  ): Promise<void> {
    ctx.log.error({ err: error }, 'handler failed');
    if (this.errorHandler) {
      const gate = new ReplyGate(reply, late);
      const controller = new AbortController();
      const ectx = ctx.derive({ gate, signal: controller.signal });
      const handler = this.errorHandler;
      const outcome = await this.limit(
        async () => answerWith(ectx, await handler(asError(error), ectx)),
        controller,
        gate,
      );
      gate.close();
      if (outcome.ok) return;
      ctx.log.error({ err: outcome.error }, '@OnError handler failed');
    }
    if (this.options.errorReply !== false) {
      reply(replyTo(ctx.message, this.options.errorReply ?? DEFAULT_ERROR_REPLY));
    }
  }

  // ---------------------------------------------------------------- routers

  private readonly routeCommand: Middleware<MessageContext> = async (ctx, next) => {
    const cmd = ctx.command === undefined ? undefined : this.commands.get(ctx.command);
    if (!cmd) return next();
    // Before parsing, so a refused user learns nothing about the arguments.
    if (cmd.guard && !(await cmd.guard(ctx))) {
      ctx.reply(this.options.refusalReply ?? this.refusal(cmd, ctx.conversation));
      return;
    }
    let args: Args = {};
    if (cmd.specs) {
      try {
        args = parseArgs(cmd.name, cmd.specs, ctx.argsText);
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
        ctx.reply(`${e.usage ?? cmd.usage}\n${e.reason}`);
        return;
      }
    }
    const hctx = ctx.derive({ args });
    answerWith(hctx, await cmd.invoke(hctx));
  };

  private readonly routeMessage: Middleware<MessageContext> = async (ctx, next) => {
    if (ctx.command !== undefined || ctx.message.content.type !== 'text') return next();
    for (const handler of this.messageHandlers) {
      let match: RegExpExecArray | undefined;
      if (handler.filter instanceof RegExp) {
        match = handler.filter.exec(ctx.text) ?? undefined;
        if (!match) continue;
      } else if (handler.filter && !(await handler.filter(ctx))) {
        continue;
      }
      const hctx = ctx.derive(match ? { match } : {});
      answerWith(hctx, await handler.invoke(hctx));
      return;
    }
    return next();
  };

  private readonly unknownCommand: Middleware<MessageContext> = (ctx) => {
    if (ctx.command === undefined || this.options.unknownCommandReply === false) return;
    // A bare command in a group may belong to another bot there.
    if (ctx.conversation.kind === 'group' && !ctx.addressedByName) return;
    // In a group a bare /help would bring every bot's list; point to ours.
    const help = ctx.conversation.kind === 'group' ? `/help@${this.name}` : '/help';
    ctx.reply(`unknown command /${ctx.command} — try ${help}`);
  };

  private refusal(cmd: Command, conversation: Conversation): string {
    if (cmd.builtInGuard !== 'group-admin') return `you are not allowed to use /${cmd.name}`;
    return conversation.kind === 'group'
      ? `only the group's committer or an admin of this bot may use /${cmd.name}`
      : `only an admin of this bot may use /${cmd.name}`;
  }

  /** 'group-admin': the group's committer (as of this message) or one of `admins`. */
  private readonly groupAdmin: Guard = (ctx) =>
    this.admins.has(ctx.sender) || (ctx.group !== undefined && ctx.group.committer === ctx.sender);

  // ---------------------------------------------------------------- start-up

  private resolveName(infos: readonly BotInfo[]): string {
    const names = [...new Set(infos.map((i) => i.name))];
    const name = this.options.name ?? (names.length === 1 ? names[0] : undefined);
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

  private resolveGroupCommands(infos: readonly BotInfo[]): GroupCommandMode {
    const mode = this.options.groupCommands ?? infos.find((i) => i.groupCommands)?.groupCommands ?? 'all';
    if (!GROUP_COMMAND_MODES.includes(mode)) {
      throw new ConfigError(
        `groupCommands ${JSON.stringify(mode)} is invalid: use ${GROUP_COMMAND_MODES.map((m) => `'${m}'`).join(' or ')}`,
      );
    }
    return mode;
  }

  private compileCommand(instance: object, className: string, meta: CommandMeta): Command {
    let guard: Guard | undefined;
    if (meta.guard === 'group-admin') {
      return {
        ...this.compileCommand(instance, className, { ...meta, guard: undefined }),
        guard: this.groupAdmin,
        builtInGuard: 'group-admin',
      };
    }
    if (typeof meta.guard === 'string') {
      guard = this.options.guards?.[meta.guard];
      if (!guard) {
        throw new ConfigError(
          `/${meta.name} uses guard "${meta.guard}", but BotRuntime has none by that name; pass { guards: { ${meta.guard}: (ctx) => … } }`,
        );
      }
    } else {
      guard = meta.guard;
    }
    const invoke = bindMethod(instance, meta.method, className);
    return {
      name: meta.name,
      aliases: meta.aliases,
      ...(meta.description !== undefined ? { description: meta.description } : {}),
      specs: meta.args,
      usage: usageLine(meta.name, meta.args ?? []),
      guard,
      invoke,
    };
  }

  private addCommand(cmd: Command): void {
    for (const n of [cmd.name, ...cmd.aliases]) {
      if (this.commands.has(n)) {
        throw new ConfigError(`/${n} is declared by two of the bot instances; rename one or drop the alias`);
      }
      this.commands.set(n, cmd);
    }
  }

  private addBuiltInHelp(): void {
    const bot = {
      name: this.name,
      ...(this.info?.description !== undefined ? { description: this.info.description } : {}),
    };
    this.addCommand({
      name: 'help',
      aliases: [],
      description: 'this list; /help <command> shows how to use one',
      // The topic is read by helpAnswer, which never fails: /help with anything after it answers.
      specs: undefined,
      usage: usageLine('help', parseArgSpec('[command]', 'help')),
      guard: undefined,
      // In a group several bots may answer /help: show the addressed form that reaches this one.
      invoke: (ctx) =>
        helpAnswer(
          bot,
          this.commandInfos,
          ctx.argsText,
          'help',
          ctx.conversation.kind === 'group' ? { addressAs: this.name } : {},
        ),
    });
  }
}
