/**
 * The chat's group commands: /group create and /group use, /groups, /members, /invite, /remove and
 * /leave. They act on the session's current group (GroupCommandDeps.current) and switch to a group
 * through the session (use).
 */
import type { GroupInfo, RelayClient } from '../../framework/relay/index.js';
import { isUserIdHex } from '../user-id.js';
import { groupListLines, memberLines, short, type Conversation } from './format.js';
import { ChatError, findGroup, resolveUsers } from './resolve.js';

/** What the group commands use of the client. */
export type GroupClient = Pick<
  RelayClient,
  'userId' | 'createGroup' | 'addToGroup' | 'removeFromGroup' | 'leaveGroup' | 'group'
>;

export const GROUP_USAGE = 'usage: /group create <name> <user_id>...  or  /group use <group_id|name|number>';
const NEED_GROUP =
  'is for groups. Fix: /group use <group> first (see /groups), or /group create <name> <user_id>...';

export interface GroupCommandDeps {
  client: GroupClient;
  print: (line: string) => void;
  /** Direct peers, for user id prefixes. */
  peers: readonly string[];
  current: () => Conversation | undefined;
  label: (groupId: string) => string;
  /** A group's name as the chat knows it (joiners learn none from the protocol). */
  name: (groupId: string) => string | undefined;
  remember: (groupId: string, name: string | undefined) => void;
  loadGroups: () => Promise<GroupInfo[]>;
  use: (g: { groupId: string }) => void;
}

export class GroupCommands {
  constructor(private readonly d: GroupCommandDeps) {}

  async group([sub, ...rest]: string[]): Promise<void> {
    if (sub === 'create') return this.create(rest);
    if (sub !== 'use' || rest.length !== 1) throw new ChatError(GROUP_USAGE);
    const groups = await this.d.loadGroups();
    this.d.use(findGroup(groups, rest[0]!, (g) => this.d.name(g.groupId)));
  }

  private async create([name, ...refs]: string[]): Promise<void> {
    if (name === undefined) throw new ChatError(GROUP_USAGE);
    if (isUserIdHex(name.toLowerCase())) {
      throw new ChatError(`"${name}" is a user id, not a group name. Fix: /group create <name> <user_id>...`);
    }
    const ids = resolveUsers(refs, this.d.peers);
    const info = await this.d.client.createGroup(ids, { name });
    this.d.remember(info.groupId, info.name ?? name);
    const invited = ids.length ? `, invited ${ids.map(short).join(', ')}` : '';
    this.d.print(`created ${this.d.label(info.groupId)} with ${info.members.length} members${invited}`);
    this.d.use(info);
  }

  async listGroups(): Promise<void> {
    const groups = await this.d.loadGroups();
    for (const line of groupListLines(groups, this.d.current(), (g) => this.d.label(g.groupId)))
      this.d.print(line);
  }

  /** The current group, freshly read; a ChatError outside a group or after leaving it. */
  private async currentGroup(command: string): Promise<GroupInfo> {
    const current = this.d.current();
    if (current?.kind !== 'group') throw new ChatError(`${command} ${NEED_GROUP}`);
    const info = await this.d.client.group(current.id);
    if (!info)
      throw new ChatError(`you are no longer in ${this.d.label(current.id)}; /groups lists your groups`);
    return info;
  }

  async members(): Promise<void> {
    const info = await this.currentGroup('/members');
    for (const line of memberLines(info, this.d.client.userId, this.d.label(info.groupId)))
      this.d.print(line);
  }

  async invite(refs: string[]): Promise<void> {
    const info = await this.currentGroup('/invite');
    if (refs.length === 0) throw new ChatError('usage: /invite <user_id>...');
    const ids = resolveUsers(refs, this.d.peers);
    const already = ids.filter((id) => info.members.some((m) => m.userId === id));
    if (already.length) {
      throw new ChatError(`${already.join(', ')} is in ${this.d.label(info.groupId)} already; see /members`);
    }
    await this.d.client.addToGroup(info.groupId, ids);
    this.printChange(info, ids, { done: 'invited', asked: 'add', where: 'to' });
  }

  async remove(refs: string[]): Promise<void> {
    const info = await this.currentGroup('/remove');
    if (refs.length === 0) throw new ChatError('usage: /remove <user_id>...');
    const members: string[] = info.members.map((m) => m.userId);
    const ids = resolveUsers(refs, members);
    if (ids.includes(this.d.client.userId))
      throw new ChatError('that is you. Fix: /leave to leave the group');
    const strangers = ids.filter((id) => !members.includes(id));
    if (strangers.length) {
      throw new ChatError(`${strangers.join(', ')} is not in ${this.d.label(info.groupId)}; see /members`);
    }
    await this.d.client.removeFromGroup(info.groupId, ids);
    this.printChange(info, ids, { done: 'removed', asked: 'remove', where: 'from' });
  }

  /** After /invite or /remove: done when we are the committer, else asked of the committer. */
  private printChange(
    info: GroupInfo,
    ids: readonly string[],
    words: { done: string; asked: string; where: 'to' | 'from' },
  ): void {
    const who = ids.map(short).join(', ');
    const group = `${words.where} ${this.d.label(info.groupId)}`;
    this.d.print(
      info.isCommitter
        ? `${words.done} ${who} ${group}`
        : `asked the committer ${short(info.committer)} to ${words.asked} ${who} ${group}`,
    );
  }

  async leave(): Promise<void> {
    const info = await this.currentGroup('/leave');
    await this.d.client.leaveGroup(info.groupId);
    // Alone in the group, we are out at once (the 'left' event came already).
    const now = this.d.current();
    if (now?.kind === 'group' && now.id === info.groupId) {
      this.d.print(`leaving ${this.d.label(info.groupId)}: done once a member commits it`);
    }
  }
}
