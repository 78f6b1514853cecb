/**
 * Durable markers of handler runs that continue after their message committed (detached-run.ts):
 * one row `replies:<bot>:<run id>` in the conversation data, written in the message's transaction,
 * rewritten with the stream id by the first part of a stream, and deleted by the run's closing
 * message. A marker still there at start-up belongs to a run a crash cut short; the runtime ends it
 * with INTERRUPTED_REPLY (as the final text of its open stream, if it had one), so a receiver never
 * waits on a reply that neither finishes nor fails.
 *
 * With replicas (several processes, one store) a marker names the replica that runs it and that
 * process's start (`owner`, `boot`): another replica's marker may belong to a live run, so it is
 * ended only once that replica is dead (dead-replicas.ts), and a replica's own marker only when it
 * is from before this process started.
 */
import type { Logger } from 'pino';
import type { ContentInput } from '../relay/content.js';
import { typingContent } from './agent-content.js';
import { isStoredTarget, storedObject, TOMBSTONE } from './data.js';

/** What ends a reply whose process crashed while producing it. */
export const INTERRUPTED_REPLY = 'this reply was interrupted';

/** Where a detached run posts: the peer of a direct conversation, or a group. */
export interface PostTarget {
  kind: 'direct' | 'group';
  /** The peer's user id, or the group id. */
  id: string;
}

/** A marker row's JSON. */
export interface OpenReply {
  to: PostTarget;
  /** The incoming message the run answers. */
  replyTo?: string;
  /** The stream whose parts have gone out and whose final text has not. */
  stream?: string;
  /**
   * A stream's final text (whole or failed) went out: the receiver has its answer, so a crash from
   * then on is ended with the lost closing `typing stop`, not with INTERRUPTED_REPLY as well.
   */
  answered?: boolean;
  /** The replica (its LeaseKeeper holder id) whose run this is; absent for a single process. */
  owner?: string;
  /** The process start of `owner` that wrote it: another boot's marker is a leftover. */
  boot?: string;
}

/** Who writes markers now: this replica, if one, and this process's start. */
export interface MarkerOwner {
  readonly owner?: string;
  readonly boot: string;
}

/** Sends content (and commits `data` with it) to a conversation, through the client's commit-then-publish path. */
export type PostFn = (
  to: PostTarget,
  content: ContentInput,
  data: Array<{ conversationId: string; json: string }>,
) => Promise<unknown>;

/** The data-key prefix of a bot's open-reply markers. */
export const openReplyPrefix = (bot: string): string => `replies:${bot}:`;
/** The data key of one detached run's open-reply marker. */
export const openReplyKey = (bot: string, runId: string): string => `${openReplyPrefix(bot)}${runId}`;

export function postTarget(
  c: { kind: 'direct'; id: string } | { kind: 'group'; groupId: string },
): PostTarget {
  return c.kind === 'group' ? { kind: 'group', id: c.groupId } : { kind: 'direct', id: c.id };
}

/** An open-reply marker as the JSON stored under openReplyKey(). */
export function encodeOpenReply(r: OpenReply): string {
  return JSON.stringify(r);
}

/** A marker row, or undefined for a tombstone or a row this version cannot read. */
export function decodeOpenReply(json: string): OpenReply | undefined {
  const o = storedObject(json) as Partial<OpenReply> | undefined;
  const to = o?.to;
  if (!o || !isStoredTarget(to)) return undefined;
  return {
    to: { kind: to.kind, id: to.id },
    ...(typeof o.replyTo === 'string' ? { replyTo: o.replyTo } : {}),
    ...(typeof o.stream === 'string' ? { stream: o.stream } : {}),
    ...(o.answered === true ? { answered: true } : {}),
    ...(typeof o.owner === 'string' ? { owner: o.owner } : {}),
    ...(typeof o.boot === 'string' ? { boot: o.boot } : {}),
  };
}

/** The message that ends an interrupted run: its stream's final text, or a plain answer. */
export function interruptedContent(r: OpenReply): ContentInput {
  if (r.answered === true && r.stream === undefined) return typingContent('stop');
  const replyTo = r.replyTo !== undefined ? { replyTo: r.replyTo } : {};
  return r.stream !== undefined
    ? { type: 'text', id: r.stream, content: INTERRUPTED_REPLY, ...replyTo }
    : { content: INTERRUPTED_REPLY, ...replyTo };
}

/**
 * Which markers are a crash's leftovers, as far as this process can tell: its own from an earlier
 * start, and, when `mayEndOthers` (the scheduler's owner; one replica does it), those of replicas
 * `isDead` says are dead, and those without an owner (a single process, or an older version).
 * A live replica's marker, or this start's, belongs to a run still going.
 */
export function isLeftover(
  m: OpenReply,
  self: MarkerOwner,
  mayEndOthers: boolean,
  isDead: (replica: string) => boolean,
): boolean {
  if (m.boot === self.boot) return false;
  if (m.owner === undefined) return mayEndOthers;
  if (m.owner === self.owner) return true;
  return mayEndOthers && isDead(m.owner);
}

/**
 * With replicas, the right to end one marker (see endInterruptedReplies): resolves to a release
 * function when this process holds it now, undefined when another process is ending that marker.
 */
export type MarkerClaim = (key: string) => Promise<(() => Promise<void>) | undefined>;

type Rows = Array<{ conversationId: string; json: string }>;

/**
 * Ends every marker `leftover` picks: sends INTERRUPTED_REPLY, committed together with the
 * marker's deletion, so a crash during recovery repeats at most this one message and never loses it.
 *
 * With replicas two processes may pick the same marker at once: a replica restarting under the
 * same id ends its own leftovers while the scheduler's owner, which saw it dead a moment before,
 * ends them as a dead replica's. Given `claim`, a marker is ended only under its claim and only if
 * it is, read again under the claim, still the row listed: the other process skips it, or finds
 * it deleted. So each marker gets exactly one final message.
 */
export async function endInterruptedReplies(
  bot: string,
  list: (prefix: string) => Promise<Rows>,
  post: PostFn,
  log: Logger,
  leftover: (m: OpenReply) => boolean = () => true,
  claim?: MarkerClaim,
): Promise<number> {
  let ended = 0;
  for (const row of await list(openReplyPrefix(bot))) {
    const marker = decodeOpenReply(row.json);
    if (!marker || !leftover(marker)) continue;
    try {
      const release = claim ? await claim(row.conversationId) : async () => undefined;
      if (!release) continue;
      try {
        if (claim && !(await stillListed(list, row))) continue;
        await post(marker.to, interruptedContent(marker), [
          { conversationId: row.conversationId, json: TOMBSTONE },
        ]);
        ended++;
      } finally {
        await release();
      }
    } catch (err) {
      log.warn(
        { err, marker: row.conversationId },
        'could not end an interrupted reply; kept for the next start',
      );
    }
  }
  return ended;
}

/** Whether `row` is still stored as listed (another process did not end or rewrite it since). */
async function stillListed(list: (prefix: string) => Promise<Rows>, row: Rows[number]): Promise<boolean> {
  const now = (await list(row.conversationId)).find((r) => r.conversationId === row.conversationId);
  return now?.json === row.json;
}
