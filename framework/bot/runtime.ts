/**
 * One bot's runtime. The bot itself is a plan (scan.ts, from the decorator metadata of the instances
 * it is given) compiled to one middleware chain (compile.ts); every update, a message or a membership
 * change (updates.ts), runs through that chain. What is left here is the wiring to a RelayClient,
 * the scheduler, and the lifecycle: attach(), stop(), detach().
 *
 * handle() never throws: a failing or slow handler is logged and answered, and the message still
 * counts as processed, so one bad message cannot be redelivered forever.
 *
 * Groups (PROTOCOL.md §9): `/cmd@name` is for the bot named (by name or user id), and another
 * bot's command is ignored without a word; a bare `/cmd` in a group is answered by every bot that
 * has it, unless `groupCommands: 'addressed-only'`.
 */
import { randomUUID } from 'node:crypto';
import { pino, type Logger } from 'pino';
import type { ReceivedMessage, SessionEvent } from '../relay/client.js';
import { ConfigError, HandlerError } from '../relay/errors.js';
import { DUTY, SOLE_OWNER, type Duties } from '../relay/duties.js';
import { AbandonedHandlers, stopGraceOf } from './abandoned.js';
import { BotAttachments } from './attachments.js';
import { blobLedgerOf, type BlobLifetime } from './blob-lifetime.js';
import { compileBot } from './compile.js';
import { Composer, run, type Middleware, type MiddlewareLike } from './composer.js';
import type { BotContext, BotSelf, HandleDeps, ReplyFn } from './context.js';
import type { BotTransaction } from './data.js';
import {
  createGroupArgs,
  GROUP_API_METHODS,
  groupApiOf,
  type GroupApi,
  type GroupEvent,
  type GroupInfo,
} from './group.js';
import type { CommandInfo } from './help.js';
import {
  endInterruptedOnStart,
  InterruptedSweep,
  runDetachable,
  type InterruptedEnds,
} from './detached-wiring.js';
import type { MarkerOwner } from './open-replies.js';
import type { PostFn } from './open-replies.js';
import type { Profile } from '../relay/profile.js';
import { botProfile } from './profile.js';
import { scanBots, type BotPlan } from './scan.js';
import type { AttachableClient, AttachOptions, BotRuntimeOptions } from './runtime-options.js';
import { jobPrefix, JobScheduler, type JobSource } from './scheduler.js';
import { admissionLeasesOf } from './task-admission.js';
import { TaskManager, taskLeasesOf, type TaskCounters } from './tasks.js';
import { systemTimers } from './stream-pacer.js';
import { TypingLimiter } from './typing.js';
import type { UpdateContext } from './update-context.js';
import {
  groupEventKind,
  groupEventUpdate,
  membershipUpdate,
  messageUpdate,
  type MembershipUpdate,
  type UpdateEnv,
} from './updates.js';

export type { AttachableClient, AttachOptions, AttachReplica, BotRuntimeOptions } from './runtime-options.js';
export { DEFAULT_HANDLER_TIMEOUT_MS } from './scan.js';
export { DEFAULT_STOP_GRACE_MS } from './abandoned.js';
export { DEFAULT_ERROR_REPLY } from './middleware/recover.js';

interface Attachment {
  readonly client: AttachableClient;
  readonly deps: HandleDeps;
  readonly listeners: ReadonlyArray<readonly ['session' | 'group' | 'message', (e: never) => void]>;
  readonly scheduler: JobScheduler | undefined;
  /** With replicas: ends the open replies of replicas that die while this one runs. */
  readonly sweep: InterruptedSweep | undefined;
  /** Records uploaded blobs and deletes expired ones (with a store and a blob store). */
  readonly blobs: BlobLifetime | undefined;
}

/** How long stop() lets detached runs wait for their message's commit event before they give up. */
const COMMIT_GRACE_MS = 1_000;

/** A promise and the function that resolves it. */
function stopSignal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Lets the event's emitter (often inside a conversation lane) finish before a handler runs. */
function afterCurrentEvent(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/** Runs bot instances on a RelayClient: parses messages, runs middleware and handlers, commits replies. */
export class BotRuntime {
  readonly name: string;
  readonly plan: BotPlan;
  /**
   * What the bot publishes about itself with its key bundle (PROTOCOL.md §8): give it to the client
   * as `RelayClientOptions.profile`, as `relay-bot start` does.
   */
  readonly profile: Profile;
  /** Sends and opens attachments; `attachments.drops` counts the received ones dropped. */
  readonly attachments: BotAttachments;
  private readonly user = new Composer<BotContext>();
  private readonly chain: Middleware<UpdateContext>;
  private readonly tasks: TaskManager;
  private readonly log: Logger;
  private readonly env: UpdateEnv;
  private attachment: Attachment | undefined;
  /** undefined outside attach(): unit tests may schedule into a MemoryDataStore. */
  private jobsEnabled: boolean | undefined;
  /** Membership updates and deferred group changes: stop() waits for them. */
  private readonly background = new Set<Promise<void>>();
  /** stop() was called: start-up work still waiting for the connection gives up. */
  private halted = false;
  /** stop() returned: what a handler that outlived it does with ctx is refused (abandoned.ts). */
  private stopped = false;
  /** Handlers past their time limit, still running: stop() waits for them, bounded. */
  private readonly abandoned = new AbandonedHandlers();
  private readonly stopGraceMs: number;
  /**
   * Resolved by stop(): a detached run still waiting for its message's commit event gives up (its
   * marker, if the commit did happen, is ended at the next start), so stop() cannot hang on it.
   */
  private halt = stopSignal();
  /** What this process's open-reply markers name: its replica, and this start (one per runtime). */
  private markerOwner: MarkerOwner = { boot: randomUUID() };

  constructor(
    bots: object | readonly object[],
    private readonly options: BotRuntimeOptions = {},
  ) {
    this.plan = scanBots(bots, options);
    this.name = this.plan.name;
    this.profile = botProfile(this.plan);
    this.log = (options.logger ?? pino({ level: 'silent' })).child({ bot: this.name });
    this.stopGraceMs = stopGraceOf(options.stopGraceMs);
    const now = options.clock ?? Date.now;
    this.tasks = new TaskManager(this.name, this.plan.commands, options.tasks, this.log, now);
    this.attachments = new BotAttachments(options.attachments);
    this.chain = compileBot(this.plan, {
      user: this.user,
      ...(options.refusalReply !== undefined ? { refusalReply: options.refusalReply } : {}),
      ...(options.unknownCommandReply !== undefined
        ? { unknownCommandReply: options.unknownCommandReply }
        : {}),
      ...(options.errorReply !== undefined ? { errorReply: options.errorReply } : {}),
      ...(options.wrap ? { wrap: options.wrap } : {}),
      ...(this.tasks.enabled ? { tasks: this.tasks } : {}),
    });
    this.env = {
      plan: this.plan,
      log: this.log,
      now,
      session: options.session,
      jobsEnabled: () => this.jobsEnabled,
      self: (deps) => this.self(deps),
      later: (work) => this.track(afterCurrentEvent().then(work)),
      halted: () => this.halt.promise,
      newId: randomUUID,
      abandon: (running, controller, label) => this.abandoned.add(running, controller, label),
      stopped: () => this.stopped,
      markerOwner: () => this.markerOwner,
      typing: new TypingLimiter(),
      timers: systemTimers,
      attachments: this.attachments,
    };
  }

  /**
   * Middleware that runs before the handlers, in the order added, for every update (messages and
   * membership changes): plugins, logging, rate limits. A plugin is a function, or an object with
   * middleware() (a Composer, AccessPlugin); handler classes (PingPlugin) go in with the bots.
   */
  use(...mw: MiddlewareLike<BotContext>[]): this {
    this.user.use(...mw);
    return this;
  }

  /** `task-cancel` messages dropped, by reason (tasks.ts). */
  get taskCounters(): Readonly<TaskCounters> {
    return { ...this.tasks.counters };
  }

  /** Every command once, in declaration order (the built-in /help last). */
  commandList(): readonly CommandInfo[] {
    return this.plan.commandInfos;
  }

  /**
   * Makes this runtime the client's transactional message handler, runs @OnJoin when a peer opens
   * a direct conversation with us (the client's 'session' event, role 'joiner'), runs the group
   * membership handlers on the client's 'group' events and, given `{ store }`, starts the
   * scheduler. Attach before client.start(), so no message is committed without a handler.
   */
  attach(client: AttachableClient, options: AttachOptions = {}): void {
    if (this.attachment) throw new ConfigError('this BotRuntime is already attached; detach() it first');
    this.halted = false;
    this.stopped = false;
    this.halt = stopSignal();
    const groups = groupApiOf(client);
    // The client emits 'message' with the object it gave the handler, once that run committed.
    // Several parts of one run may wait for it (group intents, a detached handler).
    const committed = new WeakMap<ReceivedMessage, Array<() => void>>();
    const post: PostFn = (to, content, data) =>
      to.kind === 'direct'
        ? client.send(to.id, content, { data })
        : this.requireGroups(deps, 'posting to a group').sendToGroup(to.id, content, { data });
    const deps: HandleDeps = {
      selfId: client.userId,
      send: (userId, text) => client.send(userId, text),
      ...(groups ? { groups } : {}),
      afterCommit: (m, run) => void committed.set(m, [...(committed.get(m) ?? []), run]),
      post,
    };
    client.setMessageHandler((message, reply, tx) => this.handle(message, reply, deps, tx));
    const onMessage = (m: ReceivedMessage): void => {
      const runs = committed.get(m);
      committed.delete(m);
      for (const run of runs ?? []) run();
    };
    // Membership updates are deferred: the events fire inside a conversation's lane, which
    // ctx.send() would queue on. Tracked from now, so stop() also waits for one not yet started.
    const onDirectOpened = (s: SessionEvent): void => {
      if (s.role !== 'joiner') return;
      const event: MembershipUpdate = {
        kind: 'join',
        userId: s.peer,
        conversation: { kind: 'direct', id: s.peer },
      };
      this.env.later(() => this.handleMembership(event, deps));
    };
    const onGroup = (e: GroupEvent): void => this.env.later(() => this.handleGroupEvent(e, deps));
    const listeners = [
      ['session', onDirectOpened],
      ['group', onGroup],
      ['message', onMessage],
    ] as const;
    for (const [event, fn] of listeners) client.on(event, fn as never);
    const scheduler = options.store
      ? this.startScheduler(client, options.store, options.duties ?? SOLE_OWNER)
      : undefined;
    this.jobsEnabled = scheduler !== undefined;
    const replica = options.replica;
    const owner = replica?.replicaId ?? taskLeasesOf(options.duties)?.holder;
    this.markerOwner = { boot: this.markerOwner.boot, ...(owner !== undefined ? { owner } : {}) };
    const store = options.store;
    const ends: InterruptedEnds | undefined = store && {
      bot: this.name,
      store,
      post,
      duties: options.duties ?? SOLE_OWNER,
      log: this.log,
      self: this.markerOwner,
      replica,
      connected: () => client.connected,
      halted: () => this.halted,
    };
    const sweep = ends && replica ? new InterruptedSweep({ ...ends, replica }) : undefined;
    const blobs = this.attachments.startLifetime({
      bot: this.name,
      ledger: blobLedgerOf(store),
      now: this.env.now,
      log: this.log.child({ component: 'blobs' }),
      owns: () => (options.duties ?? SOLE_OWNER).owns(DUTY.scheduler),
    });
    this.attachment = { client, deps, listeners, scheduler, sweep, blobs };
    if (store && ends) {
      this.tasks.attach({
        store,
        post,
        self: () => this.self(deps),
        leases: taskLeasesOf(options.duties),
        admission: admissionLeasesOf(replica?.registry),
        connected: () => client.connected,
      });
      const first = endInterruptedOnStart(ends);
      this.track(first);
      // Its passes queue behind the start-up one: both at once would end one marker twice.
      sweep?.start(first);
    }
  }

  /**
   * Stops the scheduler and waits for running membership updates and for the group changes message
   * handlers asked for; the client keeps this runtime as its handler. Call before client.stop().
   * Handlers abandoned at their time limit get their signal aborted and up to `stopGraceMs` to
   * return (abandoned.ts); past that, stop() warns naming them, and their ctx refuses from then on.
   */
  async stop(): Promise<void> {
    this.halted = true;
    await this.attachment?.sweep?.stop();
    await this.attachment?.scheduler?.stop();
    await this.attachment?.blobs?.stop();
    // Running tasks stop without a final message: their rows stay for the next owner.
    await this.tasks.stop();
    // A detached run whose commit event is due any moment gets a grace period before it gives up.
    const settled = Promise.allSettled([...this.background]);
    await Promise.race([settled, new Promise((r) => setTimeout(r, COMMIT_GRACE_MS).unref())]);
    this.halt.resolve();
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
    await this.abandoned.settle(this.stopGraceMs, this.log);
    this.stopped = true;
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
    this.attachments.startLifetime(undefined);
    a.client.setMessageHandler(undefined);
    for (const [event, fn] of a.listeners) a.client.off(event, fn as never);
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
      const ctx = await messageUpdate(this.env, message, reply, deps, tx);
      if (!ctx) return;
      await runDetachable(this.chain, ctx, (w) => this.track(w), this.log);
    } catch (err) {
      // Only a bug in the runtime itself lands here; rethrowing would make the message poison.
      this.log.error({ err }, 'bot runtime failed on a message');
    }
  }

  /**
   * Runs a membership update (@OnJoin, @OnLeave or @OnMembers) through the chain; failures are
   * logged (there is no one to answer). A group join or members change reads the group through
   * `deps.groups` for ctx.group.
   */
  async handleMembership(event: MembershipUpdate, deps: HandleDeps): Promise<void> {
    if (this.plan.membership[event.kind].length === 0) return;
    await run(this.chain, await membershipUpdate(this.env, event, deps));
  }

  /** Maps the client's 'group' event to a membership update (PROTOCOL.md §9). */
  private async handleGroupEvent(e: GroupEvent, deps: HandleDeps): Promise<void> {
    const kind = groupEventKind(e);
    // Reading the group costs a state decode; skip it when no one listens.
    if (kind === undefined || this.plan.membership[kind].length === 0) return;
    const found = await groupEventUpdate(e, deps);
    if (!found) return;
    await run(this.chain, await membershipUpdate(this.env, found.event, deps, { info: found.info }));
  }

  private startScheduler(client: AttachableClient, store: JobSource, duties: Duties): JobScheduler {
    const scheduler = new JobScheduler({
      prefix: jobPrefix(this.name),
      source: store,
      send: (to, text, o) => client.send(to, text, o),
      now: this.env.now,
      log: this.log.child({ component: 'scheduler' }),
      ready: () => client.connected !== false,
      owns: () => duties.owns(DUTY.scheduler),
      ...(this.options.scheduler?.pollMs !== undefined ? { pollMs: this.options.scheduler.pollMs } : {}),
    });
    scheduler.start();
    return scheduler;
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
      commands: this.plan.commandInfos,
      ...(this.plan.description !== undefined ? { description: this.plan.description } : {}),
      createGroup: async (a: string | undefined | readonly string[], b?: readonly string[]) => {
        this.refuseStopped('ctx.bot.createGroup()');
        return this.createGroupWith(deps, a, b);
      },
      groups: async () => {
        this.refuseStopped('ctx.bot.groups()');
        return this.requireGroups(deps, 'ctx.bot.groups()').groups();
      },
    };
  }

  private async createGroupWith(
    deps: HandleDeps,
    a: string | undefined | readonly string[],
    b: readonly string[] | undefined,
  ): Promise<GroupInfo> {
    const { name, ids } = createGroupArgs(a, b, deps.selfId);
    return this.requireGroups(deps, 'createGroup()').createGroup(ids, name !== undefined ? { name } : {});
  }

  /** A handler that outlived stop() (abandoned.ts) gets a clear error, not a closed client's. */
  private refuseStopped(what: string): void {
    if (this.stopped) throw new HandlerError(`${what} after the runtime stopped`);
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
}
