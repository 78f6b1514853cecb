/**
 * The state and commands of `relay-bot chat`: the current conversation (a peer or a group), the
 * direct peers, and the slash commands. Every line runs in order on one chain, so lines piped in
 * act one after the other (a group is created before the next line posts to it); incoming messages
 * and group events are printed as they come.
 */
import { isEphemeralContent } from '../../framework/relay/index.js';
import type { GroupEvent, GroupInfo, ReceivedMessage, RelayClient } from '../../framework/relay/index.js';
import { UsageError } from '../errors.js';
import { isUserIdHex } from '../user-id.js';
import {
  directMessageLine,
  groupEventLine,
  groupLabel,
  groupListLines,
  groupMessageLine,
  HELP,
  memberLines,
  printable,
  short,
  type Conversation,
} from './format.js';
import { ChatError, findGroup, findPeer, resolveUser, resolveUsers } from './resolve.js';
import type { ChatFiles } from './attachments.js';
import type { AttachmentContent, ContentInput } from '../../framework/relay/index.js';

/** What the chat uses of RelayClient. */
export type ChatClient = Pick<
  RelayClient,
  | 'userId'
  | 'send'
  | 'createGroup'
  | 'addToGroup'
  | 'removeFromGroup'
  | 'leaveGroup'
  | 'sendToGroup'
  | 'group'
  | 'groups'
  | 'on'
  | 'off'
>;

type Command = (args: string[]) => Promise<void> | void;

const GROUP_USAGE = 'usage: /group create <name> <user_id>...  or  /group use <group_id|name|number>';
const NEED_GROUP =
  'is for groups. Fix: /group use <group> first (see /groups), or /group create <name> <user_id>...';

export class ChatSession {
  readonly peers: string[];
  current: Conversation | undefined;
  /** Called when the current conversation changes (the prompt shows it). */
  onChange: () => void = () => undefined;
  /** Group names as far as we know them: joiners learn no name from the protocol. */
  private readonly names = new Map<string, string>();
  private chain: Promise<void> = Promise.resolve();
  private readonly commands: Record<string, Command> = {
    '/peers': () => this.listPeers(),
    '/switch': (a) => this.switchPeer(a[0]),
    '/add': (a) => this.addPeer(a[0]),
    '/chathelp': () => this.print(HELP),
    '/groups': () => this.listGroups(),
    '/group': (a) => this.groupCommand(a),
    '/members': () => this.members(),
    '/invite': (a) => this.invite(a),
    '/remove': (a) => this.remove(a),
    '/leave': () => this.leave(),
    '/attach': async (a) => this.print(await this.needFiles().attach(a.join(' '), (c) => this.post(c))),
  };

  constructor(
    private readonly client: ChatClient,
    peers: readonly string[],
    private readonly print: (line: string) => void,
    private readonly files?: ChatFiles,
  ) {
    this.peers = [...new Set(peers)];
    this.current = this.peers[0] === undefined ? undefined : { kind: 'direct', id: this.peers[0] };
  }

  /** Listens to the client's messages and group events; returns the function that stops it. */
  attach(): () => void {
    const onMessage = (m: ReceivedMessage): void => this.incoming(m);
    const onGroup = (e: GroupEvent): void => this.groupEvent(e);
    this.client.on('message', onMessage);
    this.client.on('group', onGroup);
    return () => {
      this.client.off('message', onMessage);
      this.client.off('group', onGroup);
    };
  }

  /** Learns the names of the groups we are in (for labels and /group use <name>). */
  async loadGroups(): Promise<GroupInfo[]> {
    const groups = await this.client.groups();
    for (const g of groups) this.remember(g.groupId, g.name);
    return groups;
  }

  /** `--group`: opens a group we are in, or fails with exit code 2. */
  async openGroup(ref: string): Promise<void> {
    const groups = await this.loadGroups();
    try {
      this.use(findGroup(groups, ref, (g) => this.names.get(g.groupId)));
    } catch (e) {
      if (!(e instanceof ChatError)) throw e;
      throw new UsageError(
        `--group: ${e.message.replace(/ Fix: .*$/, '')}. Fix: give the id (or name) of a group this identity is in; \`relay-bot chat\` then /groups lists them`,
      );
    }
  }

  /** The current conversation, in words. */
  where(): string {
    const c = this.current;
    if (!c) return 'no conversation yet: /add <user_id>, /group create or /groups';
    return c.kind === 'direct' ? `talking to ${c.id}` : `in ${this.label(c.id)} (${c.id})`;
  }

  label(groupId: string): string {
    return groupLabel(groupId, this.names.get(groupId));
  }

  /** Returns false for /quit. */
  line(input: string): boolean {
    const line = input.replace(/\r$/, '');
    if (line.trim().length === 0) return true;
    if (line.startsWith('//')) {
      this.enqueue(() => this.post(line.slice(1)));
      return true;
    }
    const [word = '', ...args] = line.trim().split(/\s+/);
    if (word === '/quit' || word === '/exit') return false;
    const command = this.commands[word];
    this.enqueue(command ? () => command(args) : () => this.post(line));
    return true;
  }

  /** Resolves when every line so far has been acted on. */
  idle(): Promise<void> {
    return this.chain;
  }

  private enqueue(work: () => Promise<void> | void): void {
    this.chain = this.chain.then(work).catch((e: unknown) => this.printError(e));
  }

  private printError(e: unknown): void {
    if (e instanceof ChatError || e instanceof UsageError) this.print(e.message);
    else this.print(`! ${printable(e instanceof Error ? e.message : String(e))}`);
  }

  private setCurrent(next: Conversation | undefined): void {
    this.current = next;
    this.onChange();
  }

  private remember(groupId: string, name: string | undefined): void {
    if (name !== undefined) this.names.set(groupId, name);
  }

  // ------------------------------------------------------------------ incoming

  private incoming(m: ReceivedMessage): void {
    // Typing notices are not lines of the conversation (PROTOCOL.md §8: never stored, lapse in 10 s).
    if (isEphemeralContent(m.content)) return;
    if (m.content.type === 'attachment' && this.files)
      return this.incomingFile(m, m.content as AttachmentContent);
    if (m.conversation.kind === 'group') {
      this.remember(m.conversation.groupId, m.conversation.name);
      this.print(groupMessageLine(this.label(m.conversation.groupId), m.from, m.content.content));
      return;
    }
    if (!this.peers.includes(m.from)) this.peers.push(m.from);
    this.print(directMessageLine(m.from, m.content.content));
  }

  /** Saved (or refused) in the background; the line comes when it is done. */
  private incomingFile(m: ReceivedMessage, c: AttachmentContent): void {
    const line = (t: string): string =>
      m.conversation.kind === 'group'
        ? groupMessageLine(this.label(m.conversation.groupId), m.from, t)
        : directMessageLine(m.from, t);
    void this.files!.save(c).then(
      (t) => this.print(line(t)),
      (e: unknown) => this.printError(e),
    );
  }

  private needFiles(): ChatFiles {
    if (!this.files)
      throw new ChatError(
        '/attach needs the attachments config (attachments.downloadDir, attachments.store)',
      );
    return this.files;
  }

  private groupEvent(e: GroupEvent): void {
    // /group create reports its own group, with the name the event does not carry.
    if (e.kind === 'created') return;
    this.print(groupEventLine(e, this.label(e.groupId)));
    if (e.kind === 'joined' && this.current === undefined) this.use({ groupId: e.groupId });
    else if (e.kind === 'joined') this.print(`  /group use ${short(e.groupId)} to talk there`);
    if (e.kind === 'left' && this.current?.kind === 'group' && this.current.id === e.groupId) {
      this.fallBack();
    }
  }

  /** After leaving the current group: the first peer, or no conversation. */
  private fallBack(): void {
    const peer = this.peers[0];
    this.setCurrent(peer === undefined ? undefined : { kind: 'direct', id: peer });
    this.print(
      peer === undefined
        ? 'no current conversation: /groups, /group use <group>, or /add <user_id>'
        : `now talking to ${peer}`,
    );
  }

  // ------------------------------------------------------------------ posting

  private async post(text: string | ContentInput): Promise<void> {
    const to = this.current;
    if (!to) {
      throw new ChatError(
        'not sent: no current conversation. Fix: /add <user_id>, /group use <group> or /group create',
      );
    }
    try {
      if (to.kind === 'group') await this.client.sendToGroup(to.id, text);
      else await this.client.send(to.id, text);
    } catch (e) {
      const where = to.kind === 'group' ? this.label(to.id) : short(to.id);
      this.print(`! not sent to ${where}: ${printable((e as Error).message)}`);
    }
  }

  // ------------------------------------------------------------------ direct peers

  private listPeers(): void {
    if (this.peers.length === 0) this.print('no peers yet: /add <user_id>');
    this.peers.forEach((p, i) => {
      const mark = this.current?.kind === 'direct' && this.current.id === p ? '*' : ' ';
      this.print(`${mark} ${i + 1}. ${p}`);
    });
  }

  private switchPeer(ref: string | undefined): void {
    const target = ref === undefined ? undefined : findPeer(this.peers, ref);
    if (!target) throw new ChatError(`no such peer: ${ref ?? '(none given)'}; see /peers`);
    this.talkTo(target);
  }

  private addPeer(ref: string | undefined): void {
    const id = resolveUser(ref ?? '', []);
    if (!this.peers.includes(id)) this.peers.push(id);
    this.talkTo(id);
  }

  private talkTo(id: string): void {
    this.setCurrent({ kind: 'direct', id });
    this.print(`now talking to ${id}`);
  }

  // ------------------------------------------------------------------ groups

  private async groupCommand([sub, ...rest]: string[]): Promise<void> {
    if (sub === 'create') return this.create(rest);
    if (sub !== 'use' || rest.length !== 1) throw new ChatError(GROUP_USAGE);
    const groups = await this.loadGroups();
    this.use(findGroup(groups, rest[0]!, (g) => this.names.get(g.groupId)));
  }

  private use(g: { groupId: string }): void {
    this.setCurrent({ kind: 'group', id: g.groupId });
    this.print(`now in ${this.label(g.groupId)} (${g.groupId})`);
  }

  private async create([name, ...refs]: string[]): Promise<void> {
    if (name === undefined) throw new ChatError(GROUP_USAGE);
    if (isUserIdHex(name.toLowerCase())) {
      throw new ChatError(`"${name}" is a user id, not a group name. Fix: /group create <name> <user_id>...`);
    }
    const ids = resolveUsers(refs, this.peers);
    const info = await this.client.createGroup(ids, { name });
    this.remember(info.groupId, info.name ?? name);
    const invited = ids.length ? `, invited ${ids.map(short).join(', ')}` : '';
    this.print(`created ${this.label(info.groupId)} with ${info.members.length} members${invited}`);
    this.use(info);
  }

  private async listGroups(): Promise<void> {
    const groups = await this.loadGroups();
    for (const line of groupListLines(groups, this.current, (g) => this.label(g.groupId))) this.print(line);
  }

  /** The current group, freshly read; a ChatError outside a group or after leaving it. */
  private async currentGroup(command: string): Promise<GroupInfo> {
    const current = this.current;
    if (current?.kind !== 'group') throw new ChatError(`${command} ${NEED_GROUP}`);
    const info = await this.client.group(current.id);
    if (!info)
      throw new ChatError(`you are no longer in ${this.label(current.id)}; /groups lists your groups`);
    return info;
  }

  private async members(): Promise<void> {
    const info = await this.currentGroup('/members');
    for (const line of memberLines(info, this.client.userId, this.label(info.groupId))) this.print(line);
  }

  private async invite(refs: string[]): Promise<void> {
    const info = await this.currentGroup('/invite');
    if (refs.length === 0) throw new ChatError('usage: /invite <user_id>...');
    const ids = resolveUsers(refs, this.peers);
    const already = ids.filter((id) => info.members.some((m) => m.userId === id));
    if (already.length) {
      throw new ChatError(`${already.join(', ')} is in ${this.label(info.groupId)} already; see /members`);
    }
    await this.client.addToGroup(info.groupId, ids);
    this.printChange(info, ids, { done: 'invited', asked: 'add', where: 'to' });
  }

  private async remove(refs: string[]): Promise<void> {
    const info = await this.currentGroup('/remove');
    if (refs.length === 0) throw new ChatError('usage: /remove <user_id>...');
    const members: string[] = info.members.map((m) => m.userId);
    const ids = resolveUsers(refs, members);
    if (ids.includes(this.client.userId)) throw new ChatError('that is you. Fix: /leave to leave the group');
    const strangers = ids.filter((id) => !members.includes(id));
    if (strangers.length) {
      throw new ChatError(`${strangers.join(', ')} is not in ${this.label(info.groupId)}; see /members`);
    }
    await this.client.removeFromGroup(info.groupId, ids);
    this.printChange(info, ids, { done: 'removed', asked: 'remove', where: 'from' });
  }

  /** After /invite or /remove: done when we are the committer, else asked of the committer. */
  private printChange(
    info: GroupInfo,
    ids: readonly string[],
    words: { done: string; asked: string; where: 'to' | 'from' },
  ): void {
    const who = ids.map(short).join(', ');
    const group = `${words.where} ${this.label(info.groupId)}`;
    this.print(
      info.isCommitter
        ? `${words.done} ${who} ${group}`
        : `asked the committer ${short(info.committer)} to ${words.asked} ${who} ${group}`,
    );
  }

  private async leave(): Promise<void> {
    const info = await this.currentGroup('/leave');
    await this.client.leaveGroup(info.groupId);
    // Alone in the group, we are out at once (the 'left' event came already).
    if (this.current?.kind === 'group' && this.current.id === info.groupId) {
      this.print(`leaving ${this.label(info.groupId)}: done once a member commits it`);
    }
  }
}
