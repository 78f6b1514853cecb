/**
 * A Relay peer for the test harness: a real RelayClient that talks to the bot and records what it
 * receives (direct replies, group messages, group events) so tests can wait for them.
 */
import type { ReceivedMessage } from '../relay/client.js';
import type { GroupEvent, GroupInfo } from '../relay/group-types.js';
import type { RelayClient } from '../relay/index.js';

/** A reply the bot sent to a test peer. */
export interface TestReply {
  readonly content: string;
  readonly type: string;
  readonly id: string | undefined;
  readonly replyTo: string | undefined;
}

/** A message seen on a group's topic. */
export interface TestGroupMessage extends TestReply {
  readonly from: string;
  readonly groupId: string;
}

/** A typing indicator a test peer received: who, start or stop, and the group (absent in 1:1). */
export interface TestTyping {
  readonly from: string;
  readonly state: 'start' | 'stop';
  readonly groupId?: string;
}

/** A user talking to the bot under test: send() messages, await nextReply(). */
export interface TestPeer {
  readonly userId: string;
  /** The peer's RelayClient, for what the harness does not cover. */
  readonly client: RelayClient;
  /** Every message the bot sent this peer directly, in arrival order (also those nextReply() returned). */
  readonly replies: readonly TestReply[];
  /** Every group event of this peer's client, in order. */
  readonly groupEvents: readonly GroupEvent[];
  /**
   * Typing indicators (§8 `typing`) this peer received, in order. Kept apart from replies and group
   * messages: they are ephemeral, and a handler slower than ~1 s sends them on its own.
   */
  readonly typing: readonly TestTyping[];
  /**
   * Creates a group with this peer as its committer. `members` (user ids) default to the bot;
   * resolves once the invitations are published, not when the invitees have joined.
   */
  createGroup(options?: { members?: readonly string[]; name?: string }): Promise<GroupInfo>;
  /** Posts text to a group this peer is in; resolves when the broker accepted it. */
  sendToGroup(groupId: string, text: string): Promise<{ id: string }>;
  /** Every message others posted in the group, in arrival order. */
  groupMessages(groupId: string): readonly TestGroupMessage[];
  /**
   * The next message in the group from `from` (default: the bot) that no earlier call for that
   * group and sender returned.
   */
  nextGroupMessage(
    groupId: string,
    options?: { from?: string; timeoutMs?: number },
  ): Promise<TestGroupMessage>;
  nextGroupMessages(
    groupId: string,
    n: number,
    options?: { from?: string; timeoutMs?: number },
  ): Promise<TestGroupMessage[]>;
  /**
   * The bot's answer in the group to one message (by the id sendToGroup() returned): its message
   * whose reply_to is that id, whatever else the bot said in the group meanwhile.
   */
  groupReplyTo(groupId: string, messageId: string, timeoutMs?: number): Promise<TestGroupMessage>;
  /**
   * Resolves with the group once this peer is in it (e.g. after an invitation) and `until` holds
   * for it, for instance `(g) => g.members.length === 3` after an add.
   */
  waitForGroup(groupId: string, until?: (g: GroupInfo) => boolean, timeoutMs?: number): Promise<GroupInfo>;
  /** Sends text to the bot; resolves when the broker accepted it. */
  send(text: string): Promise<{ id: string }>;
  /** The next message from the bot that no earlier nextReply() returned. */
  nextReply(timeoutMs?: number): Promise<TestReply>;
  /** The next `n` messages from the bot. */
  nextReplies(n: number, timeoutMs?: number): Promise<TestReply[]>;
}

interface Waiter {
  check: () => boolean;
  resolve: () => void;
}

/** Resolves when `check` holds; re-checked whenever `notify` is called. */
export class Signal {
  private waiters: Waiter[] = [];

  notify(): void {
    const ready = this.waiters.filter((w) => w.check());
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }

  wait(check: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`test harness: ${what()} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }
}

/** How often waitForGroup() looks again when no group event arrived meanwhile. */
const GROUP_POLL_MS = 100;

export class Peer implements TestPeer {
  readonly replies: TestReply[] = [];
  readonly groupEvents: GroupEvent[] = [];
  readonly typing: TestTyping[] = [];
  private cursor = 0;
  private readonly arrived = new Signal();
  private readonly inGroups = new Map<string, TestGroupMessage[]>();
  /** `${groupId}:${sender}` → how many of that sender's messages were returned. */
  private readonly groupCursors = new Map<string, number>();
  private readonly groupChanged = new Signal();

  constructor(
    readonly client: RelayClient,
    private readonly botId: () => string,
    private readonly timeoutMs: number,
  ) {
    client.on('message', (m: ReceivedMessage) => {
      const reply = {
        content: m.content.content,
        type: m.content.type,
        id: m.content.id,
        replyTo: m.content.replyTo,
      };
      if (m.content.type === 'typing') {
        const where = m.conversation.kind === 'group' ? { groupId: m.conversation.groupId } : {};
        if ('state' in m.content) this.typing.push({ from: m.from, state: m.content.state, ...where });
      } else if (m.conversation.kind === 'group') {
        const groupId = m.conversation.groupId;
        const list = this.inGroups.get(groupId) ?? [];
        list.push({ ...reply, from: m.from, groupId });
        this.inGroups.set(groupId, list);
      } else if (m.from === this.botId()) {
        this.replies.push(reply);
      }
      this.arrived.notify();
    });
    client.on('group', (e: GroupEvent) => {
      this.groupEvents.push(e);
      this.groupChanged.notify();
    });
  }

  get userId(): string {
    return this.client.userId;
  }

  send(text: string): Promise<{ id: string }> {
    return this.client.send(this.botId(), text);
  }

  async nextReply(timeoutMs = this.timeoutMs): Promise<TestReply> {
    const [reply] = await this.nextReplies(1, timeoutMs);
    return reply!;
  }

  async nextReplies(n: number, timeoutMs = this.timeoutMs): Promise<TestReply[]> {
    const want = this.cursor + n;
    await this.arrived.wait(
      () => this.replies.length >= want,
      timeoutMs,
      () =>
        `expected ${n} more repl${n === 1 ? 'y' : 'ies'} from the bot, got ${this.replies.length - this.cursor}` +
        ` (all replies so far: ${JSON.stringify(this.replies.map((r) => r.content.slice(0, 80)))})`,
    );
    const out = this.replies.slice(this.cursor, want);
    this.cursor = want;
    return out;
  }

  createGroup(options: { members?: readonly string[]; name?: string } = {}): Promise<GroupInfo> {
    return this.client.createGroup(
      options.members ?? [this.botId()],
      options.name !== undefined ? { name: options.name } : {},
    );
  }

  sendToGroup(groupId: string, text: string): Promise<{ id: string }> {
    return this.client.sendToGroup(groupId, text);
  }

  groupMessages(groupId: string): readonly TestGroupMessage[] {
    return this.inGroups.get(groupId) ?? [];
  }

  async nextGroupMessage(
    groupId: string,
    options: { from?: string; timeoutMs?: number } = {},
  ): Promise<TestGroupMessage> {
    const [message] = await this.nextGroupMessages(groupId, 1, options);
    return message!;
  }

  async nextGroupMessages(
    groupId: string,
    n: number,
    options: { from?: string; timeoutMs?: number } = {},
  ): Promise<TestGroupMessage[]> {
    const from = options.from ?? this.botId();
    const key = `${groupId}:${from}`;
    const seen = this.groupCursors.get(key) ?? 0;
    const theirs = (): TestGroupMessage[] => this.groupMessages(groupId).filter((m) => m.from === from);
    await this.arrived.wait(
      () => theirs().length >= seen + n,
      options.timeoutMs ?? this.timeoutMs,
      () =>
        `expected ${n} more group message${n === 1 ? '' : 's'} from ${from === this.botId() ? 'the bot' : from}` +
        ` in ${groupId.slice(0, 12)}…, got ${theirs().length - seen}` +
        ` (everything in the group so far: ${JSON.stringify(this.groupMessages(groupId).map((m) => m.content.slice(0, 80)))})`,
    );
    this.groupCursors.set(key, seen + n);
    return theirs().slice(seen, seen + n);
  }

  async groupReplyTo(
    groupId: string,
    messageId: string,
    timeoutMs = this.timeoutMs,
  ): Promise<TestGroupMessage> {
    const find = (): TestGroupMessage | undefined =>
      this.groupMessages(groupId).find((m) => m.from === this.botId() && m.replyTo === messageId);
    await this.arrived.wait(
      () => find() !== undefined,
      timeoutMs,
      () =>
        `the bot did not answer message ${messageId} in ${groupId.slice(0, 12)}…` +
        ` (its messages there: ${JSON.stringify(
          this.groupMessages(groupId)
            .filter((m) => m.from === this.botId())
            .map((m) => m.content.slice(0, 80)),
        )})`,
    );
    return find()!;
  }

  async waitForGroup(
    groupId: string,
    until: (g: GroupInfo) => boolean = () => true,
    timeoutMs = this.timeoutMs,
  ): Promise<GroupInfo> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = await this.client.group(groupId);
      if (info && until(info)) return info;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `test harness: ${info ? 'the group did not reach the expected state' : 'this peer did not join the group'} ${groupId.slice(0, 12)}… within ${timeoutMs} ms` +
            (info ? ` (members: ${info.members.map((m) => m.userId.slice(0, 8)).join(', ')})` : ''),
        );
      }
      // Group events say when to look again; the poll covers changes that emit none.
      const events = this.groupEvents.length;
      await this.groupChanged
        .wait(
          () => this.groupEvents.length > events,
          Math.min(left, GROUP_POLL_MS),
          () => '',
        )
        .catch(() => undefined);
    }
  }
}
