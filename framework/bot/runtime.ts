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
 * direct conversation with us, and (given a store) the scheduler that sends ctx.schedule() jobs.
 */
import { pino, type Logger } from 'pino';
import type { ReceivedMessage, RelayClient, SessionEvent } from '../relay/client.js';
import { ConfigError, HandlerError } from '../relay/errors.js';
import { parseArgSpec, usageLine, type ArgSpec, type Args } from './args.js';
import { compose, run, Composer, type Middleware, type MiddlewareLike } from './composer.js';
import {
  conversationOf,
  MessageContext,
  ReplyGate,
  type BotContext,
  type BotSelf,
  type HandleDeps,
  type MembershipContext,
  type MembershipEvent,
  type ReplyContent,
  type ReplyFn,
} from './context.js';
import { gatedTransaction, noTransaction, transactionalSessionStore, type BotTransaction } from './data.js';
import { ParseError } from './errors.js';
import { helpAnswer, type CommandInfo } from './help.js';
import {
  BOT_NAME_PATTERN,
  readBotMetadata,
  type BotClass,
  type BotInfo,
  type CommandMeta,
  type Guard,
  type MessageFilter,
} from './metadata.js';
import { isAddressedTo, parseArgs, parseCommandHead, type CommandHead } from './parser.js';
import { encodeJob, jobKey, jobPrefix, JobScheduler, type JobSource } from './scheduler.js';
import { LazySession, type SessionOptions } from './session.js';

export const DEFAULT_HANDLER_TIMEOUT_MS = 10_000;
export const DEFAULT_ERROR_REPLY = 'Sorry, something went wrong.';

export interface BotRuntimeOptions {
  /** The name `/cmd@name` matches; defaults to the @Bot name. */
  name?: string;
  /** Answer `unknown command /foo — try /help` (default true; in groups only to `/foo@us`). */
  unknownCommandReply?: boolean;
  /** Sent when a handler fails and no @OnError answers; false sends nothing. */
  errorReply?: string | false;
  handlerTimeoutMs?: number;
  logger?: Logger;
  /** Guards that commands name in `guard: 'admin'`. */
  guards?: Record<string, Guard>;
  /** Sent when a guard refuses; defaults to `you are not allowed to use /name`. */
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

export type AttachableClient = Pick<RelayClient, 'userId' | 'send' | 'setMessageHandler' | 'on' | 'off'> & {
  /** When present, the scheduler waits for it to be true. */
  readonly connected?: boolean;
};

export interface AttachOptions {
  /**
   * Where scheduled jobs are read (the client's RelayStore). Without it the scheduler does not run
   * and ctx.schedule() is a configuration error.
   */
  store?: JobSource;
}

interface Attachment {
  readonly client: AttachableClient;
  readonly onSession: (s: SessionEvent) => void;
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

function replyTo(message: ReceivedMessage, content: string): string | ReplyContent {
  return message.content.id === undefined ? content : { content, replyTo: message.content.id };
}

export class BotRuntime {
  readonly name: string;
  private readonly info: BotInfo | undefined;
  private readonly commands = new Map<string, Command>();
  private commandInfos: readonly CommandInfo[] = [];
  private readonly messageHandlers: MessageHandler[] = [];
  private readonly joinHandlers: Invoke[] = [];
  private readonly leaveHandlers: Invoke[] = [];
  private readonly errorHandler: Invoke | undefined;
  private readonly user = new Composer<BotContext>();
  private readonly chain: Middleware<MessageContext>;
  private readonly timeoutMs: number;
  private readonly log: Logger;
  private readonly now: () => number;
  private attachment: Attachment | undefined;
  /** undefined outside attach(): unit tests may schedule into a MemoryDataStore. */
  private jobsEnabled: boolean | undefined;
  private readonly membership = new Set<Promise<void>>();

  constructor(
    bots: object | readonly object[],
    private readonly options: BotRuntimeOptions = {},
  ) {
    const instances: readonly object[] = Array.isArray(bots) ? bots : [bots];
    if (instances.length === 0) throw new ConfigError('BotRuntime needs at least one bot instance');
    const errorHandlers: Invoke[] = [];
    const infos: BotInfo[] = [];
    for (const instance of instances) {
      if (typeof instance !== 'object' || instance === null) {
        throw new ConfigError('BotRuntime takes instances (new MyBot()), not classes or other values');
      }
      const cls = instance.constructor as BotClass;
      const meta = readBotMetadata(cls);
      const handlers = meta.commands.length + meta.messages.length + meta.join.length + meta.leave.length;
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
      if (meta.error !== undefined) errorHandlers.push(bindMethod(instance, meta.error, cls.name));
    }
    if (errorHandlers.length > 1)
      throw new ConfigError('more than one @OnError among the bot instances; keep one');
    this.errorHandler = errorHandlers[0];
    this.info = infos[0];
    this.name = this.resolveName(infos);
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
   * a direct conversation with us ('session' event, role 'joiner') and, given `{ store }`, starts
   * the scheduler. Attach before client.start(), so no message is committed without a handler.
   */
  attach(client: AttachableClient, options: AttachOptions = {}): void {
    if (this.attachment) throw new ConfigError('this BotRuntime is already attached; detach() it first');
    const deps: HandleDeps = { selfId: client.userId, send: (userId, text) => client.send(userId, text) };
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
      this.track(
        new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.handleMembership(event, deps)),
      );
    };
    client.on('session', onSession);
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
    this.attachment = { client, onSession, scheduler };
  }

  /**
   * Stops the scheduler and waits for running @OnJoin/@OnLeave handlers; the client keeps this
   * runtime as its handler. Call before client.stop().
   */
  async stop(): Promise<void> {
    await this.attachment?.scheduler?.stop();
    while (this.membership.size > 0) await Promise.allSettled([...this.membership]);
  }

  /**
   * stop(), then removes the message handler and the 'session' listener. Stop the client first:
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

  /** Runs @OnJoin or @OnLeave handlers; failures are logged (there is no one to answer). */
  async handleMembership(event: MembershipEvent, deps: HandleDeps): Promise<void> {
    const handlers = event.kind === 'join' ? this.joinHandlers : this.leaveHandlers;
    const log = this.log.child({ event: event.kind, conversation: event.conversation.id });
    const ctx: MembershipContext = {
      ...event,
      bot: this.self(deps),
      log,
      send: async (userId, text) => void (await deps.send(userId, text)),
    };
    for (const handler of handlers) {
      const gate = new ReplyGate(
        () => undefined,
        () => undefined,
      );
      const outcome = await this.limit(async () => void (await handler(ctx)), gate, new AbortController());
      if (!outcome.ok)
        log.error({ err: outcome.error }, `@On${event.kind === 'join' ? 'Join' : 'Leave'} handler failed`);
    }
  }

  private track(work: Promise<void>): void {
    this.membership.add(work);
    void work.finally(() => this.membership.delete(work));
  }

  private self(deps: HandleDeps): BotSelf {
    return {
      name: this.name,
      userId: deps.selfId,
      commands: this.commandInfos,
      ...(this.info?.description !== undefined ? { description: this.info.description } : {}),
    };
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
    if (head && !isAddressedTo(head, { name: this.name, userId: deps.selfId })) {
      log.debug({ command: head.name }, 'command addressed to another bot');
      return;
    }
    const controller = new AbortController();
    const tx = rawTx ? gatedTransaction(rawTx, () => gate.isOpen) : noTransaction;
    const sessionStore =
      this.options.session?.store ?? (rawTx ? transactionalSessionStore(tx, this.name) : undefined);
    const session = new LazySession(conversation.id, sessionStore, this.options.session?.initial);
    const ctx = new MessageContext({
      message,
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
      addressedByName: head?.target !== undefined,
    });
    // The session is saved inside the time limit: a hung store must not hold the conversation.
    const outcome = await this.limit(
      async () => {
        await run(this.chain, ctx);
        // A handler that finished after its time limit was already answered as a failure.
        if (!controller.signal.aborted) await session.save();
      },
      gate,
      controller,
    );
    gate.close();
    if (!outcome.ok) await this.recover(outcome.error, ctx, reply, late);
  }

  /** Runs `work` under the time limit; on timeout closes `gate` at once so late replies are dropped. */
  private async limit(
    work: () => Promise<void>,
    gate: ReplyGate,
    controller: AbortController,
  ): Promise<Outcome> {
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const expired = new Promise<Outcome>((resolve) => {
      timer = setTimeout(() => {
        timedOut = true;
        gate.close();
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
        gate,
        controller,
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
      ctx.reply(this.options.refusalReply ?? `you are not allowed to use /${cmd.name}`);
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
    ctx.reply(`unknown command /${ctx.command} — try /help`);
  };

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

  private compileCommand(instance: object, className: string, meta: CommandMeta): Command {
    let guard: Guard | undefined;
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
      invoke: (ctx) => helpAnswer(bot, this.commandInfos, ctx.argsText),
    });
  }
}
