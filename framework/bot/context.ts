/**
 * What handlers and middleware see of one update: an incoming message, or a membership change
 * (@OnJoin, @OnLeave, @OnMembers). Every update runs through the same middleware chain with a
 * BotContext; `ctx.update.kind` tells them apart. Contexts are never mutated: the routers derive a
 * new one carrying the parsed args (or the RegExp match) for the handler they call
 * (update-context.ts builds them).
 */
import type { Logger } from 'pino';
import type { UserIdHex } from '../relay/brand.js';
import type { ReceivedMessage } from '../relay/client.js';
import type { ContentInput } from '../relay/content.js';
import type { ActionButton } from './agent-content.js';
import type { ReceivedFile } from '../relay/attachments/index.js';
import type { AttachInput } from './attachments.js';
import type { GroupConversation as RelayGroupConversation } from '../relay/group-types.js';
import type { Args } from './args.js';
import type { BotTransaction } from './data.js';
import type { GroupApi, GroupHandle, GroupInfo } from './group.js';
import type { CommandInfo } from './help.js';
import type { PostFn } from './open-replies.js';
import type { Session } from './session.js';

/** A 1:1 conversation with one peer. */
export interface DirectConversation {
  readonly kind: 'direct';
  /** The peer's user id. */
  readonly id: string;
}

/**
 * A group conversation: `id` is the group id (64 hex digits), the same as groupId; topicId is the
 * group's topic id (32 hex digits, PROTOCOL.md §3).
 */
export type GroupConversation = Readonly<RelayGroupConversation>;

/** Where a message came from: a direct (1:1) conversation or a group. */
export type Conversation = DirectConversation | GroupConversation;

/** A reply with more than text: its content type and the message it answers. */
export interface ReplyContent {
  content: string;
  /** Defaults to the incoming message's id. */
  replyTo?: string;
  type?: string;
  /** The reply's message id; the runtime gives a fresh one when absent (ctx.reply() returns it). */
  id?: string;
}

/**
 * The reply hook RelayClient.setMessageHandler passes in; RelayClient's ReplyFn is assignable to it.
 * The runtime passes any §8 content through it (reactions, edits, actions…).
 */
export type ReplyFn = (reply: string | ContentInput) => void;
/** Sends text to a user outside the current conversation (ctx.send). */
export type SendFn = (userId: string, text: string) => Promise<unknown>;

/** What BotRuntime.handle() needs from outside to run a message through the bot. */
export interface HandleDeps {
  /** Outreach, e.g. `(u, t) => client.send(u, t)`. */
  send: SendFn;
  /** This bot's user id (32 lowercase hex). */
  selfId: string;
  /**
   * The client's group API. Without it ctx.group is undefined and creating groups is a
   * ConfigError (attach() passes the client's when it has all of it).
   */
  groups?: GroupApi;
  /**
   * Calls `run` once the client has committed `message` (attach() wires it to the client's
   * 'message' event). ctx.group changes wait for it, so a handler run whose commit failed (and
   * that the client runs again) changes nothing; without it they start right after the handler.
   */
  afterCommit?: (message: ReceivedMessage, run: () => void) => void;
  /**
   * Sends any §8 content to a conversation through the client's commit-then-publish path, with
   * `data` committed alongside (attach() wires it to client.send / sendToGroup). ctx.typing(),
   * ctx.stream() and automatic typing need it; without it they are a ConfigError.
   */
  post?: PostFn;
}

/** What the runtime tells handlers and plugins about the bot they run in. */
export interface BotSelf {
  readonly name: string;
  readonly userId: string;
  readonly description?: string;
  /** Every command, once (aliases are listed on it), in declaration order. */
  readonly commands: readonly CommandInfo[];
  /**
   * Creates a group of this bot and `members` (user ids; the bot is added by itself) and invites
   * them. Slow: each invitation is sealed with proof of work. Not part of any message transaction.
   */
  createGroup(members: readonly string[]): Promise<GroupInfo>;
  createGroup(name: string | undefined, members: readonly string[]): Promise<GroupInfo>;
  /** The groups the bot is a member of. */
  groups(): Promise<GroupInfo[]>;
}

/** A message to send later; see ctx.schedule(). */
export interface ScheduleRequest {
  text: string;
  /** Delay from now in ms (the runtime's clock); give this or `at`. */
  inMs?: number;
  /** Due time in ms since the epoch. */
  at?: number;
  /** Recipient; defaults to the sender of a direct message. */
  to?: string;
}

/**
 * What is being handled: a message, or a membership change. Membership updates reach the same
 * middleware as messages (so an allow-list can also cover @OnJoin), with `text` '' and no command.
 */
export type Update =
  | { readonly kind: 'message'; readonly message: ReceivedMessage }
  | Readonly<MembershipEvent>
  | Readonly<MembersEvent>;

/** The kind of an Update: message, join, leave or members. */
export type UpdateKind = Update['kind'];

/** What a handler gets for one message: its text, sender, conversation, parsed args, session and reply/send. */
export interface BotContext<A = Args, S = Record<string, unknown>> {
  readonly update: Update;
  /** The message text (`content.content`), untouched; '' for a membership update. */
  readonly text: string;
  /** Lowercased command name, undefined when the message is not a command. */
  readonly command: string | undefined;
  /** Typed arguments of the command; `{}` before the command router and outside commands. */
  readonly args: A;
  /** The text after the command head, verbatim; '' outside commands. */
  readonly argsText: string;
  /** Set for handlers of @OnMessage(RegExp). */
  readonly match: RegExpExecArray | undefined;
  /**
   * The MLS-authenticated sender, never an id claimed inside the content. For a membership update:
   * the peer who opened a direct conversation, the member who invited the bot into a group, else
   * the bot itself (it created the group, left it, or saw its members change).
   */
  readonly sender: UserIdHex;
  /** `kind` 'direct' or 'group'; a group's also carries its groupId, topicId and name. */
  readonly conversation: Conversation;
  /** The group the message came from; undefined in a direct conversation. */
  readonly group: GroupHandle | undefined;
  /**
   * The message as RelayClient delivered it, its typed §8 content in `message.content` (AppContent:
   * narrow with isKnownContent() and switch on `type`); undefined for a membership update.
   */
  readonly message: ReceivedMessage | undefined;
  /** The choice an `action` message made (for @OnAction handlers): the action id and the actions message. */
  readonly action: ChosenAction | undefined;
  /** A `reaction` message (for @OnReaction handlers): the emoji, the message it is on, and whether it was removed. */
  readonly reaction: ReceivedReaction | undefined;
  /**
   * The files of an `attachment` message, their size and SHA-256 already checked (blobs downloaded
   * and decrypted); [] otherwise. One that failed a check never reaches a handler (attachments.ts).
   */
  readonly attachments: readonly ReceivedFile[];
  readonly bot: BotSelf;
  readonly log: Logger;
  /**
   * Per-conversation state. With an attached runtime it is saved in the message's transaction,
   * after a handler that succeeded, so it commits together with the message and the replies.
   */
  readonly session: Session<S>;
  /**
   * The message's transaction, for plugins keeping their own per-key JSON (rate limits, jobs).
   * Writes commit with the message and its replies even when a later handler fails; writes after
   * the handler finished throw. Namespace keys as `<plugin>:<bot>:…`; JSON `null` means deleted.
   */
  readonly tx: BotTransaction;
  /** Aborted when the handler ran out of time; long work should watch it. */
  readonly signal: AbortSignal;
  /**
   * Answers in this conversation (in a group: on the group's topic, with reply_to). Replies are
   * committed together with the incoming message, so a crash loses both or keeps both; replies made
   * after the handler finished or timed out are dropped. In a membership update it posts at once,
   * outside any transaction (a failure is logged). After the handler detached (the first
   * ctx.typing() or ctx.stream(), or automatic typing) a reply is sent at once instead, in order.
   * Returns the reply's message id (for ctx.edit() and ctx.delete()).
   */
  reply(reply: string | ReplyContent): string;
  /** Reacts to the incoming message (a reply: committed with it). ArgumentError beyond 32 bytes. */
  react(emoji: string): void;
  /** Replaces the text of an earlier message of this bot (an id ctx.reply() returned). */
  edit(messageId: string, text: string): void;
  /** Retracts an earlier message of this bot (an id ctx.reply() returned). */
  delete(messageId: string): void;
  /**
   * Offers 1..10 buttons (ids 1..128 characters, unique); a choice arrives as an `action` message,
   * routed to @OnAction. Returns the actions message's id.
   */
  actions(prompt: string, actions: readonly ActionButton[]): string;
  /**
   * Sends a file ({ name, mediaType?, bytes } or a path): inline up to 64 KiB, else AES-256-GCM
   * encrypted into the runtime's `attachments.store` (a ConfigError naming it when there is none).
   * Await it before the handler returns; resolves with the message id.
   */
  attach(file: AttachInput, options?: { replyTo?: string }): Promise<string>;
  /**
   * Sends `typing start` (at most one per 3 s per conversation). The first call commits the incoming
   * message early (with the replies and session so far) and the handler goes on detached from the
   * conversation's lane: see detached-run.ts. Automatic typing does the same after ~1 s.
   */
  typing(): Promise<void>;
  /**
   * Streams a reply: the parts, coalesced to at most 4 per second, go out as `stream` messages
   * (same id, seq 0, 1, …), then one final `text` with that id supersedes them; returns the id.
   * Commits the incoming message early, like typing(). Each part renews the handler's time limit.
   * If `parts` throws, the final text says the reply failed and the error propagates.
   */
  stream(parts: AsyncIterable<string>, options?: { replyTo?: string }): Promise<string>;
  /**
   * Writes to another user (first contact included: bundle fetch and proof of work, which can take
   * seconds). Not part of the message transaction: it is sent at once and, if the process crashes
   * before the message commits, sent again when the message is redelivered. Use reply() for the
   * sender: their conversation is busy with this very message until the handler returns.
   */
  send(userId: string, text: string): Promise<void>;
  /**
   * Sends `text` later, also across restarts: the job is written in this message's transaction (so
   * it exists only if the message commits) and sent by the runtime's scheduler when due, with its
   * removal committed together with the outgoing message. Returns the job's key.
   */
  schedule(job: ScheduleRequest): string;
}

/** What an @OnAction handler was called for: `id` the action chosen, `messageId` the actions message. */
export interface ChosenAction {
  readonly id: string;
  readonly messageId: string;
}

/** What an @OnReaction handler was called for. */
export interface ReceivedReaction {
  readonly emoji: string;
  /** The message reacted to. */
  readonly messageId: string;
  /** The sender took this reaction back. */
  readonly removed: boolean;
}

/** A join or a leave, as @OnJoin and @OnLeave handlers see it. */
export interface MembershipEvent {
  kind: 'join' | 'leave';
  /** Who joined or left: the peer in a direct conversation; in a group, this bot. */
  userId: UserIdHex;
  conversation: Conversation;
  /** A group join: the member whose invitation added the bot; undefined when the bot created it. */
  invitedBy?: UserIdHex;
  /** A group leave: removed by the committer, or the bot left. */
  reason?: 'removed' | 'left';
}

/** Members added to or removed from a group the bot stays in. */
export interface MembersEvent {
  kind: 'members';
  conversation: GroupConversation;
  added: readonly UserIdHex[];
  removed: readonly UserIdHex[];
}

/** What handlers of events that are not messages (joins, leaves, member changes) can do. */
export interface EventContextBase {
  readonly bot: BotSelf;
  readonly log: Logger;
  /** Sent at once, outside any transaction: a crash right after the event may skip or repeat it. */
  send(userId: string, text: string): Promise<void>;
  /**
   * Posts to the conversation (the group, or the peer of a direct conversation), at once and
   * outside any transaction. Refused after the bot left the group.
   */
  reply(reply: string | ReplyContent): Promise<void>;
}

/** What @OnJoin/@OnLeave handlers receive: there is no message to answer, only outreach. */
export interface MembershipContext extends MembershipEvent, EventContextBase {
  /** The group on a group join; undefined in direct conversations and after leaving. */
  readonly group: GroupHandle | undefined;
}

/** What @OnMembers handlers receive. */
export interface MembersContext extends MembersEvent, EventContextBase {
  /** The group after the change; undefined only when it could not be read. */
  readonly group: GroupHandle | undefined;
}

/** Where replies go; closed when the handler is finished so late replies cannot sneak in. */
export class ReplyGate {
  private open = true;

  constructor(
    private readonly target: ReplyFn,
    private readonly onLate: (reply: string | ContentInput) => void,
  ) {}

  push(reply: string | ContentInput): void {
    if (this.open) this.target(reply);
    else this.onLate(reply);
  }

  get isOpen(): boolean {
    return this.open;
  }

  close(): void {
    this.open = false;
  }
}

/** The conversation of a group, from anything naming it (a message's conversation, GroupInfo, a GroupEvent). */
export function groupConversation(g: { groupId: string; topicId: string; name?: string }): GroupConversation {
  return {
    kind: 'group',
    id: g.groupId,
    groupId: g.groupId,
    topicId: g.topicId,
    ...(g.name !== undefined ? { name: g.name } : {}),
  };
}

/** `content` as an answer to `message` (with reply_to when the message has an id). */
export function replyTo(message: ReceivedMessage, content: string): string | ReplyContent {
  return message.content.id === undefined ? content : { content, replyTo: message.content.id };
}

export function conversationOf(message: ReceivedMessage): Conversation {
  const c = message.conversation;
  return c.kind === 'direct' ? { kind: 'direct', id: c.id } : groupConversation(c);
}
