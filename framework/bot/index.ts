/**
 * framework/bot: decorated bot classes on top of RelayClient. Most bots need only the decorators,
 * BotRuntime and the BotContext type; the parser and composer are exported for plugins and tests.
 */
// Commonly used
export {
  Bot,
  OnCommand,
  OnMessage,
  OnJoin,
  OnLeave,
  OnMembers,
  OnError,
  OnAction,
  OnReaction,
  OnAttachment,
  readBotMetadata,
} from './decorators.js';
export type { BotOptions, CommandOptions, TaskCommandDecoratorOptions } from './decorators.js';
export {
  BotRuntime,
  DEFAULT_ERROR_REPLY,
  DEFAULT_HANDLER_TIMEOUT_MS,
  DEFAULT_STOP_GRACE_MS,
} from './runtime.js';
export type { BotRuntimeOptions, AttachableClient, AttachOptions, AttachReplica } from './runtime.js';
export type {
  TaskContext,
  TaskHandle,
  TaskCommandOptions,
  TaskLimits,
  TaskRestartPolicy,
  TaskRow,
} from './task-types.js';
export {
  DEFAULT_TASK_LIMITS,
  TASK_CANCELED,
  TASK_LIMIT_TOTAL,
  TASK_LIMIT_USER,
  TASK_RESTART_FAILED,
  taskKey,
  taskPrefix,
} from './task-types.js';
export type { TaskCounters } from './tasks.js';
export { collectPlugins } from './plugin.js';
export type { Plugin, PluginParts } from './plugin.js';
export type {
  BotContext,
  Update,
  UpdateKind,
  BotSelf,
  ScheduleRequest,
  Conversation,
  DirectConversation,
  GroupConversation,
  ReplyContent,
  ReplyFn,
  SendFn,
  HandleDeps,
  MembershipEvent,
  MembershipContext,
  MembersEvent,
  MembersContext,
  EventContextBase,
  ChosenAction,
  ReceivedReaction,
} from './context.js';
export type { ActionButton } from './agent-content.js';
export { BotAttachments, mediaTypeOf, type AttachInput, type BotAttachmentOptions } from './attachments.js';
export { INTERRUPTED_REPLY } from './open-replies.js';
export { STREAM_FAILED_NOTE } from './detached-run.js';
export { TYPING_MIN_INTERVAL_MS, DEFAULT_TYPING_AFTER_MS, DEFAULT_TYPING_EVERY_MS } from './typing.js';
export type { TypingOption } from './typing.js';
export type { GroupHandle, GroupApi, GroupInfo, GroupMemberInfo, GroupEvent } from './group.js';
export { userIdSet } from './group.js';
export { ParseError } from './errors.js';
export { MemorySessionStore } from './session.js';
export type { Session, SessionStore, SessionOptions } from './session.js';
export { MemoryDataStore, TOMBSTONE, parseStored, sessionKey } from './data.js';
export type { BotTransaction } from './data.js';
export { helpAnswer, renderHelp, renderCommandHelp, findCommand } from './help.js';
export type { CommandInfo, HelpEntry, HelpOptions } from './help.js';

// Middleware
export { Composer, compose, run } from './composer.js';
export type { Middleware, MiddlewareLike, NextFunction, Predicate } from './composer.js';

// Expert: metadata, argument specs and the command-line parser
export type {
  BotMetadata,
  BotInfo,
  CommandMeta,
  MessageMeta,
  MessageFilter,
  BotClass,
  ActionMeta,
  ReactionMeta,
  AttachmentMeta,
} from './metadata.js';
export { BUILT_IN_GUARDS, groupAdmin, namedGuard } from './guards.js';
export type {
  Guard,
  GuardRef,
  BuiltInGuard,
  BuiltInGuardRef,
  NamedGuardRef,
  PlannedGuard,
} from './guards.js';

// Expert: the scanner (bot classes → BotPlan), the compiler (BotPlan → middleware) and the
// runtime's own middleware, for tools and for plugins that wrap them
export { scanBots, commandIndex } from './scan.js';
export { botProfile } from './profile.js';
export type {
  BotPlan,
  PlannedCommand,
  PlannedMessageHandler,
  PlannedActionHandler,
  PlannedReactionHandler,
  PlannedAttachmentHandler,
  BoundHandler,
  MembershipKind,
  ScanOptions,
} from './scan.js';
export { compileBot, compileHandlers } from './compile.js';
export type { CompileOptions, RuntimeMiddlewareName, TaskHooks, WrapRuntimeMiddleware } from './compile.js';
export type { UpdateContext, UpdateRun } from './update-context.js';
export { timeLimit } from './middleware/timeout.js';
export { TimeLease } from './time-lease.js';
export {
  BlobLifetime,
  blobPrefix,
  DEFAULT_BLOB_SWEEP_MS,
  DEFAULT_BLOB_TTL_SECONDS,
  type BlobLedgerStore,
  type BlobLifetimeOptions,
} from './blob-lifetime.js';
export { autoTyping } from './middleware/auto-typing.js';
export { StreamPacer, STREAM_PART_INTERVAL_MS, systemTimers } from './stream-pacer.js';
export type { PacerTimers, SendPart } from './stream-pacer.js';
export { DetachedRun, DetachableTransaction } from './detached-run.js';
export type { DetachedRunInit } from './detached-run.js';
export {
  endInterruptedReplies,
  openReplyKey,
  openReplyPrefix,
  decodeOpenReply,
  encodeOpenReply,
  isLeftover,
} from './open-replies.js';
export type { MarkerClaim, MarkerOwner, OpenReply, PostFn, PostTarget } from './open-replies.js';
export type { TypingPlan } from './typing.js';
export { recover } from './middleware/recover.js';
export type { RecoverOptions } from './middleware/recover.js';
export { sessionSave } from './middleware/session.js';
export { groupIntents } from './middleware/group-intents.js';
export { parseArgSpec, usageLine, convertArg, ARG_TYPES } from './args.js';
export type { ArgSpec, ArgType, ArgValue, Args, ArgsOf } from './args.js';
export {
  parseCommandHead,
  parseArgs,
  isAddressedTo,
  commandAudience,
  GROUP_COMMAND_MODES,
  ArgLexer,
} from './parser.js';
export type { CommandHead, GroupCommandMode } from './parser.js';
export { JobScheduler, DEFAULT_POLL_MS, jobKey, jobPrefix, encodeJob, decodeJob } from './scheduler.js';
export type { ScheduledJob, JobSource, JobSend, JobSchedulerOptions } from './scheduler.js';
