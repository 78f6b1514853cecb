/**
 * The state and commands of `relay-bot chat`: the current conversation (a peer or a group), the
 * direct peers, and the slash commands. Every line runs in order on one chain, so lines piped in
 * act one after the other (a group is created before the next line posts to it); incoming messages
 * and group events are printed as they come (incoming.ts words each content type; the commands
 * about messages and bots are agent-commands.ts, the group commands group-commands.ts).
 */
import type { GroupEvent, GroupInfo, ReceivedMessage, RelayClient } from '../../framework/relay/index.js';
import { UsageError } from '../errors.js';
import { AgentCommands, sendTo, type Command } from './agent-commands.js';
import { sentLine } from './content-lines.js';
import { groupEventLine, groupLabel, HELP, printable, short, type Conversation } from './format.js';
import { IncomingView, type ChatOutput } from './incoming.js';
import { completeLine, conversationUsers, ProfileBook } from './profiles.js';
import { GroupCommands } from './group-commands.js';
import { ChatError, findGroup, findPeer, resolveUser } from './resolve.js';
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
  | 'verifyPeer'
>;

/** How the session prints besides plain lines. */
export interface ChatSessionOptions {
  /** A terminal's in-place line (streams); absent on a pipe. See ChatOutput.live. */
  live?: ChatOutput['live'];
  /** A terminal: profiles of the conversation's users are loaded in the background for completions. */
  completions?: boolean;
  /** /attach and saving received files; without it attachments show as a line only. */
  files?: ChatFiles;
}

export class ChatSession {
  readonly peers: string[];
  current: Conversation | undefined;
  /** Called when the current conversation changes (the prompt shows it). */
  onChange: () => void = () => undefined;
  /** Group names as far as we know them: joiners learn no name from the protocol. */
  private readonly names = new Map<string, string>();
  private chain: Promise<void> = Promise.resolve();
  /** Lines queued but not yet acting; posts waiting for the broker; lines done (for leave()). */
  private queued = 0;
  private sending = 0;
  private done = 0;
  private readonly view: IncomingView;
  private readonly profiles: ProfileBook;
  /** The current group's members, for /profile prefixes and completions. */
  private groupMembers: string[] = [];
  private readonly commands: Record<string, Command> = {
    '/peers': () => this.listPeers(),
    '/switch': (a) => this.switchPeer(a[0]),
    '/add': (a) => this.addPeer(a[0]),
    '/chathelp': () => this.print(HELP),
    '/attach': async (a) => this.print(await this.needFiles().attach(a.join(' '), (c) => this.post(c))),
  };

  constructor(
    private readonly client: ChatClient,
    peers: readonly string[],
    private readonly print: (line: string) => void,
    private readonly options: ChatSessionOptions = {},
  ) {
    this.peers = [...new Set(peers)];
    this.current = this.peers[0] === undefined ? undefined : { kind: 'direct', id: this.peers[0] };
    const out: ChatOutput = { print, ...(options.live ? { live: options.live } : {}) };
    this.view = new IncomingView(
      out,
      (id) => this.label(id),
      () => this.onChange(),
    );
    this.profiles = new ProfileBook(client);
    const agent = new AgentCommands({
      client,
      refs: this.view.refs,
      profiles: this.profiles,
      print,
      current: () => this.current,
      known: () => [...this.peers, ...this.groupMembers],
    });
    const groups = new GroupCommands({
      client,
      print,
      peers: this.peers,
      current: () => this.current,
      label: (id) => this.label(id),
      name: (id) => this.names.get(id),
      remember: (id, name) => this.remember(id, name),
      loadGroups: () => this.loadGroups(),
      use: (g) => this.use(g),
    });
    Object.assign(this.commands, {
      '/groups': () => groups.listGroups(),
      '/group': (a: string[]) => groups.group(a),
      '/members': () => groups.members(),
      '/invite': (a: string[]) => groups.invite(a),
      '/remove': (a: string[]) => groups.remove(a),
      '/leave': () => groups.leave(),
      ...agent.commands(),
    });
    this.preloadProfiles();
  }

  /** Who is typing in the current conversation (a terminal shows it in the prompt). */
  typingNow(): string[] {
    return this.view.typing.typingIn(this.current);
  }

  /** Tab completion: the chat's commands and those the current conversation's bots offer. */
  complete(line: string): [string[], string] {
    const users = conversationUsers(this.current, this.groupMembers);
    return completeLine(line, [...Object.keys(this.commands), '/quit'], this.profiles.commandsOf(users));
  }

  /** Closing: prints streams that never ended (on a pipe) and stops the typing timers. */
  close(): void {
    this.view.flush();
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
    const rest = line.trim().slice(word.length).trim();
    this.enqueue(command ? () => command(args, rest) : () => this.post(line));
    return true;
  }

  /** Resolves when every line so far has been acted on. */
  idle(): Promise<void> {
    return this.chain;
  }

  /** Posts waiting for the broker's acknowledgement (or still being encrypted). */
  get pendingSends(): number {
    return this.sending;
  }

  /**
   * Leaving (/quit, end of input, SIGINT): waits for the lines while they make progress, giving up
   * after `quietMs` without any line finishing. A post's line finishes only when the broker has
   * acknowledged it, so a broker (or machine) that does not answer cannot hold the exit. Returns
   * what was left: posts still waiting for the broker and lines that never acted.
   */
  async leave(quietMs: number): Promise<{ sending: number; queued: number }> {
    for (;;) {
      const before = this.done;
      let timer: NodeJS.Timeout | undefined;
      const quiet = new Promise<false>((r) => (timer = setTimeout(() => r(false), quietMs)));
      const idle = await Promise.race([this.chain.then(() => true), quiet]);
      clearTimeout(timer);
      if (idle) return { sending: 0, queued: 0 };
      if (this.done === before) return { sending: this.sending, queued: this.queued };
    }
  }

  private enqueue(work: () => Promise<void> | void): void {
    this.queued++;
    this.chain = this.chain
      .then(() => {
        this.queued--;
        return work();
      })
      .catch((e: unknown) => this.printError(e))
      .finally(() => this.done++);
  }

  private printError(e: unknown): void {
    if (e instanceof ChatError || e instanceof UsageError) this.print(e.message);
    else this.print(`! ${printable(e instanceof Error ? e.message : String(e))}`);
  }

  private setCurrent(next: Conversation | undefined): void {
    this.current = next;
    this.groupMembers = [];
    this.onChange();
    this.preloadProfiles();
  }

  /** On a terminal: the current conversation's profiles, for completions (a group's members too). */
  private preloadProfiles(): void {
    const c = this.current;
    if (!this.options.completions || !c) return;
    if (c.kind === 'direct') return this.profiles.preload([c.id]);
    void this.client
      .group(c.id)
      .then((info) => {
        if (!info || this.current?.id !== c.id) return;
        this.groupMembers = info.members.map((m) => m.userId).filter((id) => id !== this.client.userId);
        this.profiles.preload(this.groupMembers);
      })
      .catch(() => undefined);
  }

  private remember(groupId: string, name: string | undefined): void {
    if (name !== undefined) this.names.set(groupId, name);
  }

  // ------------------------------------------------------------------ incoming

  private incoming(m: ReceivedMessage): void {
    if (m.conversation.kind === 'group') this.remember(m.conversation.groupId, m.conversation.name);
    else if (!this.peers.includes(m.from)) this.peers.push(m.from);
    this.view.show(m);
    if (m.content.type === 'attachment' && this.options.files) this.saveFile(m.content as AttachmentContent);
  }

  /** Saved (or refused) in the background; the line comes under the attachment's when it is done. */
  private saveFile(c: AttachmentContent): void {
    void this.options.files!.save(c).then(
      (t) => this.print(`  ${t}`),
      (e: unknown) => this.printError(e),
    );
  }

  private needFiles(): ChatFiles {
    if (!this.options.files)
      throw new ChatError(
        '/attach needs the attachments config (attachments.downloadDir, attachments.store)',
      );
    return this.options.files;
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
    this.sending++;
    try {
      const id = await sendTo(this.client, to, text);
      const shown =
        typeof text === 'string' ? text : 'name' in text ? String(text.name) : (text.content ?? '');
      const ref = this.view.refs.add({ conversation: to, from: this.client.userId, id, text: shown });
      this.print(sentLine(ref.n));
    } catch (e) {
      const where = to.kind === 'group' ? this.label(to.id) : short(to.id);
      this.print(`! not sent to ${where}: ${printable((e as Error).message)}`);
    } finally {
      this.sending--;
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

  private use(g: { groupId: string }): void {
    this.setCurrent({ kind: 'group', id: g.groupId });
    this.print(`now in ${this.label(g.groupId)} (${g.groupId})`);
  }
}
