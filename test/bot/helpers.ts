/** Builds ReceivedMessages as RelayClient delivers them and collects what a handler replies. */
import type { UserIdHex, UnixSeconds } from '../../framework/relay/brand.js';
import type { ReceivedMessage } from '../../framework/relay/client.js';
import type { ContentInput } from '../../framework/relay/content.js';
import type { GroupApi, GroupInfo, HandleDeps, ReplyContent } from '../../framework/bot/index.js';

export const SELF_ID = 'b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0';
export const ALICE = 'a11ce000a11ce000a11ce000a11ce000' as UserIdHex;
export const CAROL = 'ca201000ca201000ca201000ca201000';
export const GROUP_ID = 'f'.repeat(64);
export const TOPIC_ID = '7'.repeat(32);

let counter = 0;

export function textMessage(
  text: string,
  opts: { from?: UserIdHex; id?: string | null; type?: string; kind?: 'direct' | 'group' } = {},
): ReceivedMessage {
  const from = opts.from ?? ALICE;
  const id = opts.id === null ? undefined : (opts.id ?? `m${++counter}`);
  const content = { content: text, type: opts.type ?? 'text', ...(id !== undefined ? { id } : {}) };
  const receivedAt = 1_700_000_000 as UnixSeconds;
  if (opts.kind === 'group') {
    const conversation = {
      kind: 'group' as const,
      id: GROUP_ID,
      groupId: GROUP_ID,
      topicId: TOPIC_ID,
      name: 'team',
    };
    return { from, conversation, content, receivedAt };
  }
  return { from, conversation: { kind: 'direct', id: from, groupId: 'e'.repeat(64) }, content, receivedAt };
}

/**
 * A reply as the assertions here compare it: without the fresh id the runtime gives every reply
 * (ids are checked by the agent-API tests), and as a plain string when only text is left.
 */
export function withoutId(r: string | ContentInput): string | ReplyContent {
  if (typeof r === 'string') return r;
  const { id: _id, ...rest } = r as ReplyContent;
  return Object.keys(rest).length === 1 && 'content' in rest ? rest.content : (rest as ReplyContent);
}

export interface Collector {
  replies: Array<string | ReplyContent>;
  /** Reply texts only, in order. */
  texts(): string[];
  reply: (r: string | ContentInput) => void;
  /** The replies as given, ids included. */
  raw: Array<string | ContentInput>;
  sent: Array<{ userId: string; text: string }>;
  deps: HandleDeps;
}

/** `groups` becomes deps.groups, as attach() passes a client's group API. */
export function collector(groups?: GroupApi): Collector {
  const replies: Array<string | ReplyContent> = [];
  const sent: Array<{ userId: string; text: string }> = [];
  const raw: Array<string | ContentInput> = [];
  return {
    replies,
    raw,
    sent,
    texts: () => replies.map((r) => (typeof r === 'string' ? r : r.content)),
    reply: (r) => {
      raw.push(r);
      replies.push(withoutId(r));
    },
    deps: {
      selfId: SELF_ID,
      send: async (userId, text) => {
        sent.push({ userId, text });
        return { id: 'x' };
      },
      ...(groups ? { groups } : {}),
    },
  };
}

export const BOB = 'b0b00000b0b00000b0b00000b0b00000' as UserIdHex;

export interface FakeGroups {
  api: GroupApi;
  /** Every call, as `method arg…`, in order. */
  calls: string[];
  /** What group() answers; change it between messages. */
  info: GroupInfo | undefined;
  /** Makes the next membership change fail. */
  failNext: boolean;
}

/** An in-memory stand-in for RelayClient's group API, for one group whose committer is ALICE. */
export function fakeGroups(
  members: readonly UserIdHex[] = [ALICE, SELF_ID as UserIdHex, CAROL as UserIdHex],
): FakeGroups {
  const fake: FakeGroups = {
    calls: [],
    failNext: false,
    info: {
      groupId: GROUP_ID,
      topicId: TOPIC_ID,
      name: 'team',
      epoch: 3n,
      members: members.map((userId, leafIndex) => ({ userId, leafIndex })),
      committer: members[0]!,
      isCommitter: members[0] === SELF_ID,
    },
    api: {
      createGroup: async (ids, opts) => {
        fake.calls.push(`createGroup ${opts?.name ?? '-'} ${ids.join(',')}`);
        return {
          ...fake.info!,
          members: [SELF_ID, ...ids].map((u, i) => ({ userId: u as UserIdHex, leafIndex: i })),
        };
      },
      addToGroup: async (g, ids) => change(`addToGroup ${g.slice(0, 4)} ${ids.join(',')}`),
      removeFromGroup: async (g, ids) => change(`removeFromGroup ${g.slice(0, 4)} ${ids.join(',')}`),
      leaveGroup: async (g) => change(`leaveGroup ${g.slice(0, 4)}`),
      sendToGroup: async (g, m) => {
        fake.calls.push(`sendToGroup ${g.slice(0, 4)} ${typeof m === 'string' ? m : m.content}`);
        return { id: 'sent' };
      },
      group: async (g) => (g === GROUP_ID ? fake.info : undefined),
      groups: async () => (fake.info ? [fake.info] : []),
    },
  };
  const change = async (call: string): Promise<void> => {
    if (fake.failNext) {
      fake.failNext = false;
      throw new Error(`refused: ${call}`);
    }
    fake.calls.push(call);
  };
  return fake;
}
