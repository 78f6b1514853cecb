/**
 * The options of BotRuntime and of its attach(), and what attach() needs of a client; kept apart
 * from runtime.ts so that file stays about running the bot.
 */
import type { Logger } from 'pino';
import type { RelayClient } from '../relay/client.js';
import type { Duties } from '../relay/duties.js';
import type { LeaseStore } from '../relay/lease-store.js';
import type { BotAttachmentOptions } from './attachments.js';
import type { WrapRuntimeMiddleware } from './compile.js';
import type { GroupApi } from './group.js';
import type { Guard } from './guards.js';
import type { GroupCommandMode } from './parser.js';
import type { Plugin } from './plugin.js';
import type { JobSource } from './scheduler.js';
import type { SessionOptions } from './session.js';
import type { TaskLimits } from './task-types.js';
import type { TypingOption } from './typing.js';

/** BotRuntime's options: name, replies to unknown commands and errors, handler time limit, logger, guards, admins, group behaviour, session, /help. */
export interface BotRuntimeOptions {
  /** The name `/cmd@name` matches; defaults to the @Bot name. */
  name?: string;
  /** Answer `unknown command /foo — try /help` (default true; in groups only to `/foo@us`). */
  unknownCommandReply?: boolean;
  /** Sent when a handler fails and no @OnError answers; false sends nothing. */
  errorReply?: string | false;
  handlerTimeoutMs?: number;
  /**
   * How long stop() waits for handlers abandoned at their time limit (they keep running, their
   * signal aborted) before it gives up with a warning naming them (default 5000 ms; 0: no wait).
   */
  stopGraceMs?: number;
  logger?: Logger;
  /**
   * Plugins, the one door for extensions (plugin.ts): middleware, objects with `guards` and/or
   * middleware() (accessPlugin), and handler instances (new PingPlugin()). Their middleware runs
   * before use()'s, in the order given.
   */
  plugins?: readonly Plugin[];
  /** Guards that commands name with `namedGuard('admin')` or `guard: 'admin'` ('group-admin' is built in). */
  guards?: Record<string, Guard>;
  /**
   * User ids admitted by the built-in `groupAdmin` guard everywhere; in a group it also admits the
   * group's committer.
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
   * ctx.session: `initial` gives a new conversation's value. Attached, it lives in the message's
   * transaction; `store` replaces that (MemorySessionStore for unit tests).
   */
  session?: SessionOptions;
  /** A built-in /help (and `/help <command>`) when the bot has no `help` command (default true). */
  help?: boolean;
  /** ms since the epoch, for ctx.schedule() and the scheduler; default Date.now. */
  clock?: () => number;
  /** How often the scheduler looks for due jobs (default 1000 ms). */
  scheduler?: { pollMs?: number };
  /** Wraps the runtime's own middleware (recover, group intents, time limit, session save): compile.ts. */
  wrap?: WrapRuntimeMiddleware;
  /**
   * Automatic typing while a handler runs (default: the @Bot option, else after 1000 ms, repeated
   * every 5000 ms); `false` turns it off. Like ctx.typing(), it commits the message early.
   */
  typing?: TypingOption;
  /** Limits and pacing of task commands (`@OnCommand(name, { task: true })`, tasks.ts). */
  tasks?: TaskLimits;
  /** Attachments: the blob store for files over 64 KiB, and limits on received ones. */
  attachments?: BotAttachmentOptions;
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
  /**
   * Which single-owner duties this process does; the scheduler sends due jobs only while it owns
   * DUTY.scheduler. Replicas pass their LeaseKeeper; default: one process, owner of everything.
   * A LeaseKeeper also holds one lease per running task, so a task runs on one replica (tasks.ts).
   */
  duties?: Duties;
  /**
   * This process as one replica of several (pass what the client's `replica` option has): the
   * open-reply markers of its detached runs name it, and the scheduler's owner ends another
   * replica's markers only once the registry says that replica is dead, never a live run's.
   */
  replica?: AttachReplica;
}

/** AttachOptions.replica: who this replica is, and where to read which replicas are alive. */
export interface AttachReplica {
  /** This replica's id in the registry (its LeaseKeeper's holder). */
  replicaId: string;
  /**
   * The replica registry (the store's leases). With acquireLease and releaseLease, ending another
   * process's leftover reply takes a short lease first, so two replicas never both end one.
   */
  registry: Pick<LeaseStore, 'listReplicas'> & Partial<Pick<LeaseStore, 'acquireLease' | 'releaseLease'>>;
  /** A replica without a heartbeat this long is dead (default the lease ttl, 15 s). */
  staleAfterMs?: number;
  /** How often the scheduler's owner looks for dead replicas' open replies (default 5 s). */
  checkMs?: number;
}
