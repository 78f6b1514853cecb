/**
 * Groups as the bot layer sees them (PROTOCOL.md §9): what it needs of the client's group API, and
 * the `ctx.group` handle handlers get in a group conversation.
 *
 * Membership changes made from a message handler cannot run while the handler does: the handler
 * runs inside the group's lane of the client (before the message commits), and adding, removing or
 * leaving needs that same lane. So ctx.group.add/remove/leave in a message handler are committed
 * with the message (when the handler succeeded) and carried out by the client once that commit is
 * durable, again after a restart until they hold; their promises resolve at the commit
 * (middleware/group-intents.ts). @OnJoin/@OnMembers handlers run outside the lane and change
 * membership at once.
 */
import type { ContentInput } from '../relay/content.js';
import type { UserIdHex } from '../relay/brand.js';
import { ArgumentError, ConfigError } from '../relay/errors.js';
import type { GroupChange, GroupInfo } from '../relay/group-types.js';

export type { GroupEvent, GroupInfo, GroupMemberInfo } from '../relay/group-types.js';

/** What the runtime uses of RelayClient's group API; a client wrapper must forward these. */
export interface GroupApi {
  createGroup(members: readonly string[], opts?: { name?: string }): Promise<GroupInfo>;
  addToGroup(groupId: string, userIds: readonly string[]): Promise<void>;
  removeFromGroup(groupId: string, userIds: readonly string[]): Promise<void>;
  leaveGroup(groupId: string): Promise<void>;
  sendToGroup(
    groupId: string,
    message: string | ContentInput,
    options?: { data?: Array<{ conversationId: string; json: string }> },
  ): Promise<{ id: string }>;
  group(groupId: string): Promise<GroupInfo | undefined>;
  groups(): Promise<GroupInfo[]>;
}

export const GROUP_API_METHODS = [
  'createGroup',
  'addToGroup',
  'removeFromGroup',
  'leaveGroup',
  'sendToGroup',
  'group',
  'groups',
] as const satisfies ReadonlyArray<keyof GroupApi>;

/** The client's group API when it has all of it; a wrapper that forwards only part of it gets none. */
export function groupApiOf(client: object): GroupApi | undefined {
  const c = client as Partial<Record<keyof GroupApi, unknown>>;
  if (!GROUP_API_METHODS.every((m) => typeof c[m] === 'function')) return undefined;
  const api = client as GroupApi;
  // Bound, so a client that uses `this` works when its methods are passed around.
  return {
    createGroup: (members, opts) => api.createGroup(members, opts),
    addToGroup: (g, u) => api.addToGroup(g, u),
    removeFromGroup: (g, u) => api.removeFromGroup(g, u),
    leaveGroup: (g) => api.leaveGroup(g),
    sendToGroup: (g, m, o) => api.sendToGroup(g, m, o),
    group: (g) => api.group(g),
    groups: () => api.groups(),
  };
}

/** ctx.group: the group a message came from, as it was when the message arrived. */
export interface GroupHandle {
  /** The group id (64 hex digits). */
  readonly id: string;
  readonly topicId: string;
  readonly name: string | undefined;
  /** Every member's user id, this bot included, in leaf order. */
  readonly members: readonly UserIdHex[];
  /** The member who commits changes (PROTOCOL.md §9): 'group-admin' admits it. */
  readonly committer: UserIdHex;
  /** This bot is the group's committer. */
  readonly isCommitter: boolean;
  /**
   * Invites users (by user id). In a message handler it is committed with the message and carried
   * out after the commit (again after a restart until it holds); its promise settles then, so do
   * not await it there: awaiting it in the handler rejects at once with a HandlerError. In
   * membership handlers it runs at once. A malformed id throws an ArgumentError at once.
   */
  add(userIds: string | readonly string[]): Promise<void>;
  /** Removes members; same timing as add(). */
  remove(userIds: string | readonly string[]): Promise<void>;
  /** This bot leaves the group; same timing as add(). */
  leave(): Promise<void>;
}

const USER_ID_HEX = /^[0-9a-fA-F]{32}$/;

/** Checked user ids, lowercased and without repeats; `what` names the call in the error. */
export function checkUserIds(ids: string | readonly string[], what: string, selfId: string): string[] {
  const list = typeof ids === 'string' ? [ids] : ids;
  if (!Array.isArray(list) || list.length === 0)
    throw new ArgumentError(`${what} needs at least one user id`);
  const out = new Set<string>();
  for (const id of list) {
    if (typeof id !== 'string' || !USER_ID_HEX.test(id)) {
      throw new ArgumentError(`${what}: ${JSON.stringify(id)} is not a user id (32 hex digits)`);
    }
    const lower = id.toLowerCase();
    if (lower === selfId) {
      throw new ArgumentError(
        `${what}: ${lower} is this bot; it is always a member of its own groups (use leave() to go)`,
      );
    }
    out.add(lower);
  }
  return [...out];
}

/** createGroup(name?, members)'s arguments, checked; `selfId` may not be among the members. */
export function createGroupArgs(
  a: string | undefined | readonly string[],
  b: readonly string[] | undefined,
  selfId: string,
): { readonly name: string | undefined; readonly ids: string[] } {
  const named = typeof a === 'string' || a === undefined;
  const name = named ? a : undefined;
  const members = named ? b : a;
  if (members === undefined) {
    throw new ArgumentError('createGroup(name, members) needs the members: a list of user ids');
  }
  if (name !== undefined && (name.trim() === '' || name.length > 128)) {
    throw new ArgumentError('createGroup(): a group name has 1 to 128 characters');
  }
  const ids = members.length === 0 ? [] : checkUserIds(members, 'createGroup()', selfId);
  return { name, ids };
}

/**
 * A configured list of user ids (admins, allow-lists) as a set of lowercase ids; undefined stays
 * undefined. `what` (e.g. 'BotRuntime admins') names the option in the ConfigError.
 */
export function userIdSet(ids: readonly string[] | undefined, what: string): Set<string> | undefined {
  if (ids === undefined) return undefined;
  if (!Array.isArray(ids)) throw new ConfigError(`${what} must be a list of user ids`);
  return new Set(
    ids.map((id: unknown) => {
      if (typeof id !== 'string' || !USER_ID_HEX.test(id.trim())) {
        throw new ConfigError(`${what}: ${JSON.stringify(id)} is not a user id (32 hex digits)`);
      }
      return id.trim().toLowerCase();
    }),
  );
}

/**
 * Runs a membership change: at once, or after the handler (see the module comment). `change`
 * describes it, so that inside a message handler it can be committed with the message instead.
 */
export type GroupOpRunner = (
  what: string,
  op: () => Promise<void>,
  change: { groupId: string; change: GroupChange },
) => Promise<void>;

export function groupHandle(info: GroupInfo, api: GroupApi, selfId: string, run: GroupOpRunner): GroupHandle {
  const members = Object.freeze(info.members.map((m) => m.userId));
  return {
    id: info.groupId,
    topicId: info.topicId,
    name: info.name,
    members,
    committer: info.committer,
    isCommitter: info.isCommitter,
    add(userIds) {
      const what = 'ctx.group.add()';
      const ids = checkUserIds(userIds, what, selfId);
      return run(what, () => api.addToGroup(info.groupId, ids), {
        groupId: info.groupId,
        change: { kind: 'add', userIds: ids },
      });
    },
    remove(userIds) {
      const what = 'ctx.group.remove()';
      const ids = checkUserIds(userIds, what, selfId);
      return run(what, () => api.removeFromGroup(info.groupId, ids), {
        groupId: info.groupId,
        change: { kind: 'remove', userIds: ids },
      });
    },
    leave() {
      return run('ctx.group.leave()', () => api.leaveGroup(info.groupId), {
        groupId: info.groupId,
        change: { kind: 'leave' },
      });
    },
  };
}
