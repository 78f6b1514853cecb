/**
 * Turns what the client delivers into updates for the chain: an incoming message (parsed command
 * head, audience in groups, ctx.group, ctx.session, group intents) or a membership change (a peer
 * opened a direct conversation, the bot joined or left a group, a group's members changed).
 */
import type { Logger } from 'pino';
import type { UserIdHex } from '../relay/brand.js';
import type { ReceivedMessage } from '../relay/client.js';
import type { ContentInput } from '../relay/content.js';
import { ConfigError, HandlerError } from '../relay/errors.js';
import {
  conversationOf,
  groupConversation,
  replyTo,
  ReplyGate,
  type BotSelf,
  type HandleDeps,
  type MembersEvent,
  type MembershipEvent,
  type ReplyFn,
} from './context.js';
import { gatedTransaction, noTransaction, transactionalSessionStore, type BotTransaction } from './data.js';
import { DetachableTransaction, DetachedRun } from './detached-run.js';
import { TimeLease } from './time-lease.js';
import { lazyChild } from './lazy-logger.js';
import { postTarget, type MarkerOwner } from './open-replies.js';
import type { PacerTimers } from './stream-pacer.js';
import type { TypingLimiter } from './typing.js';
import type { BotAttachments } from './attachments.js';
import { ParseError } from './errors.js';
import { groupHandle, type GroupEvent, type GroupInfo } from './group.js';
import { GroupIntents } from './middleware/group-intents.js';
import { commandAudience, parseCommandHead, type CommandHead } from './parser.js';
import type { BotPlan } from './scan.js';
import { encodeJob, jobKey } from './scheduler.js';
import { LazySession, type SessionOptions } from './session.js';
import { updateContext, type UpdateContext, type UpdateRun } from './update-context.js';

/** What building an update needs of the runtime. */
export interface UpdateEnv {
  readonly plan: BotPlan;
  readonly log: Logger;
  readonly now: () => number;
  readonly session: SessionOptions | undefined;
  /** false: attached without a store, so ctx.schedule() has no scheduler; undefined: not attached. */
  readonly jobsEnabled: () => boolean | undefined;
  readonly self: (deps: HandleDeps) => BotSelf;
  /** Runs work after the current event, tracked so the runtime's stop() waits for it. */
  readonly later: (work: () => Promise<void>) => void;
  /** Resolves when the runtime stops: a detached run still waiting for its commit gives up. */
  readonly halted: () => Promise<void>;
  /** Takes a handler abandoned at its time limit: stop() waits for it (UpdateRun.abandon). */
  readonly abandon: UpdateRun['abandon'];
  /** stop() has returned: ctx.tx reads refuse (the store may be closed). */
  readonly stopped: () => boolean;
  /** A fresh message id (replies, streams). */
  readonly newId: () => string;
  /** Who a detached run's open-reply marker names (open-replies.ts). */
  readonly markerOwner: () => MarkerOwner;
  readonly typing: TypingLimiter;
  /** Time for stream pacing. */
  readonly timers: PacerTimers;
  /** Opens received attachments before the chain runs; seals ctx.attach()'s. */
  readonly attachments: BotAttachments;
}

export type MembershipUpdate = MembershipEvent | MembersEvent;

/** The context of an incoming message; undefined when the bot stays out of it. */
export async function messageUpdate(
  env: UpdateEnv,
  message: ReceivedMessage,
  reply: ReplyFn,
  deps: HandleDeps,
  rawTx: BotTransaction | undefined,
): Promise<UpdateContext | undefined> {
  const conversation = conversationOf(message);
  // Ids only: message content stays out of logs. Made on first use (lazy-logger.ts).
  const bindings = {
    conversation: conversation.id,
    sender: message.from,
    ...(message.content.id !== undefined ? { messageId: message.content.id } : {}),
  };
  const log = lazyChild(env.log, bindings);
  const late = (): void => log.warn('a reply made after the handler finished was dropped');
  // Until the run detaches, replies go to the client (committed with the message); after, they are sent.
  // A holder: the gate exists before the run it may hand replies to (parse errors use it first).
  const detachedRef: { run?: DetachedRun } = {};
  const target = (r: string | ContentInput): void => {
    const run = detachedRef.run;
    if (run?.isDetached) run.reply(typeof r === 'string' ? { content: r } : r);
    else reply(r);
  };
  const gate = new ReplyGate(target, late);
  let head: CommandHead | undefined;
  try {
    head = message.content.type === 'text' ? parseCommandHead(message.content.content) : undefined;
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
    // In a group a malformed line may have been meant for another bot; stay quiet there.
    if (conversation.kind === 'direct') gate.push(replyTo(message, `${e.reason} — try /help`));
    return undefined;
  }
  const { plan } = env;
  const self = { name: plan.name, userId: deps.selfId };
  const audience = head && commandAudience(head, self, conversation.kind, plan.groupCommands);
  if (head && audience === 'ignore') {
    log.debug({ command: head.name }, 'command for another bot');
    return undefined;
  }
  // Before any middleware: a file that does not verify is never seen (attachments.ts).
  const files = await env.attachments.receive(message, log);
  if (!files) return undefined;
  const intents = new GroupIntents({
    message,
    deps,
    log,
    tx: rawTx,
    // Group changes commit with the message; once the run detached, that commit is done.
    open: () => gate.isOpen && detachedRef.run?.isDetached !== true,
    later: env.later,
  });
  const info =
    conversation.kind === 'group' ? await readGroupInfo(conversation.groupId, deps, log) : undefined;
  const group = info && deps.groups ? groupHandle(info, deps.groups, deps.selfId, intents.runner) : undefined;
  const detachable = new DetachableTransaction(rawTx ?? noTransaction);
  const tx = rawTx ? gatedTransaction(detachable, () => gate.isOpen, env.stopped) : noTransaction;
  const store = env.session?.store ?? (rawTx ? transactionalSessionStore(tx, plan.name) : undefined);
  const session = new LazySession<unknown>(conversation.id, store, env.session?.initial);
  const lease = new TimeLease();
  const detachedRun = new DetachedRun({
    bot: plan.name,
    runId: env.newId(),
    owner: env.markerOwner(),
    to: postTarget(conversation),
    answering: message.content.id,
    post: deps.post,
    tx: detachable,
    session,
    committed: () =>
      deps.afterCommit
        ? Promise.race([
            new Promise<void>((resolve) => deps.afterCommit!(message, resolve)),
            env.halted().then(() => {
              throw new HandlerError('the runtime stopped before the message was committed');
            }),
          ])
        : new Promise<void>((resolve) => setImmediate(resolve)),
    newId: env.newId,
    typing: env.typing,
    timers: env.timers,
    renew: () => lease.renew(),
    log,
  });
  detachedRef.run = detachedRun;
  return updateContext({
    update: { kind: 'message', message },
    conversation,
    sender: message.from,
    command: head?.name,
    argsText: head?.argsText ?? '',
    group,
    bot: env.self(deps),
    log: head ? lazyChild(env.log, { ...bindings, command: head.name }) : log,
    tx,
    addressedByName: audience === 'addressed',
    now: env.now,
    attachments: files,
    seal: (file) => env.attachments.seal(file),
    schedule: (job) => {
      if (env.jobsEnabled() === false) {
        throw new ConfigError(
          'ctx.schedule() needs the scheduler: attach the runtime with attach(client, { store })',
        );
      }
      const key = jobKey(plan.name, job.dueAt);
      tx.saveData(key, encodeJob(job));
      return key;
    },
    run: {
      deps,
      session,
      controller: new AbortController(),
      gate,
      reply: target,
      late,
      post: (r) => Promise.resolve(gate.push(r)),
      intents,
      lease,
      detached: detachedRun,
      newId: env.newId,
      abandon: env.abandon,
    },
  });
}

/** The context of a membership change; `info` (already read, or undefined) becomes ctx.group. */
export async function membershipUpdate(
  env: UpdateEnv,
  event: MembershipUpdate,
  deps: HandleDeps,
  known?: { info: GroupInfo | undefined },
): Promise<UpdateContext> {
  const conversation = event.conversation;
  const log = env.log.child({ event: event.kind, conversation: conversation.id });
  const info =
    known?.info ??
    (!known && conversation.kind === 'group' && event.kind !== 'leave'
      ? await readGroupInfo(conversation.groupId, deps, log)
      : undefined);
  // Outside any message: a membership change made here runs at once.
  const group =
    info && deps.groups ? groupHandle(info, deps.groups, deps.selfId, (_what, op) => op()) : undefined;
  const post = async (r: string | ContentInput): Promise<void> => {
    if (conversation.kind === 'direct') {
      if (deps.post && typeof r !== 'string') await deps.post(postTarget(conversation), r, []);
      else await deps.send(conversation.id, typeof r === 'string' ? r : r.content);
      return;
    }
    if (event.kind === 'leave') {
      throw new HandlerError(
        `ctx.reply() in @OnLeave: the bot is no longer in group ${conversation.groupId}`,
      );
    }
    if (!deps.groups) throw new ConfigError('ctx.reply() in a group needs a client with groups');
    await deps.groups.sendToGroup(conversation.groupId, r);
  };
  const late = (): void => log.warn('a reply made after the handler finished was dropped');
  const gate = new ReplyGate(
    (r) => void post(r).catch((err: unknown) => log.error({ err }, 'reply failed')),
    late,
  );
  const self = deps.selfId as UserIdHex;
  const sender =
    event.kind === 'join'
      ? event.conversation.kind === 'direct'
        ? event.userId
        : (event.invitedBy ?? self)
      : self;
  return updateContext({
    update: event,
    conversation,
    sender,
    command: undefined,
    argsText: '',
    group,
    bot: env.self(deps),
    log,
    tx: noTransaction,
    addressedByName: false,
    now: env.now,
    attachments: [],
    seal: (file) => env.attachments.seal(file),
    schedule: () => {
      throw new ConfigError(
        'ctx.schedule() works in message handlers only: a membership change has no transaction',
      );
    },
    run: {
      deps,
      session: new LazySession(conversation.id, env.session?.store, env.session?.initial),
      controller: new AbortController(),
      gate,
      reply: (r) => gate.push(r),
      late,
      post,
      intents: undefined,
      lease: new TimeLease(),
      detached: undefined,
      newId: env.newId,
      abandon: env.abandon,
    },
  });
}

/**
 * The membership change a client 'group' event stands for, with the group read once (for both the
 * conversation's name and ctx.group); undefined for events that change no membership ('rejoined'
 * restores our own state after falling behind) or a members change of a group we left meanwhile.
 */
export async function groupEventUpdate(
  e: GroupEvent,
  deps: HandleDeps,
): Promise<{ event: MembershipUpdate; info: GroupInfo | undefined } | undefined> {
  const self = deps.selfId as UserIdHex;
  if (e.kind === 'left') {
    return {
      event: { kind: 'leave', userId: self, conversation: groupConversation(e), reason: e.reason },
      info: undefined,
    };
  }
  if (e.kind !== 'members' && e.kind !== 'joined' && e.kind !== 'created') return undefined;
  const info = await deps.groups?.group(e.groupId).catch(() => undefined);
  if (e.kind === 'members') {
    if (!info) return undefined;
    return {
      event: { kind: 'members', conversation: groupConversation(info), added: e.added, removed: e.removed },
      info,
    };
  }
  const invitedBy = e.kind === 'joined' ? { invitedBy: e.invitedBy } : {};
  return {
    event: { kind: 'join', userId: self, conversation: groupConversation(info ?? e), ...invitedBy },
    info,
  };
}

/** The membership kind a client 'group' event maps to, before anything is read. */
export function groupEventKind(e: GroupEvent): MembershipUpdate['kind'] | undefined {
  if (e.kind === 'joined' || e.kind === 'created') return 'join';
  if (e.kind === 'left') return 'leave';
  if (e.kind === 'members') return 'members';
  return undefined;
}

/** The group as it is now; undefined (logged) when it cannot be read. */
async function readGroupInfo(groupId: string, deps: HandleDeps, log: Logger): Promise<GroupInfo | undefined> {
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
