/** Builds ReceivedMessages as RelayClient delivers them and collects what a handler replies. */
import type { UserIdHex, UnixSeconds } from '../../framework/relay/brand.js';
import type { ReceivedMessage } from '../../framework/relay/client.js';
import type { HandleDeps, ReplyContent } from '../../framework/bot/index.js';

export const SELF_ID = 'b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0';
export const ALICE = 'a11ce000a11ce000a11ce000a11ce000' as UserIdHex;
export const CAROL = 'ca201000ca201000ca201000ca201000';

let counter = 0;

export function textMessage(
  content: string,
  opts: { from?: UserIdHex; id?: string | null; type?: string; kind?: 'direct' | 'group' } = {},
): ReceivedMessage {
  const from = opts.from ?? ALICE;
  const id = opts.id === null ? undefined : (opts.id ?? `m${++counter}`);
  const conversation =
    opts.kind === 'group'
      ? // RelayClient does not deliver group messages yet; the runtime already maps this shape.
        ({
          kind: 'group',
          id: 'g'.repeat(32),
          groupId: 'f'.repeat(64),
        } as unknown as ReceivedMessage['conversation'])
      : { kind: 'direct' as const, id: from, groupId: 'e'.repeat(64) };
  return {
    from,
    conversation,
    content: { content, type: opts.type ?? 'text', ...(id !== undefined ? { id } : {}) },
    receivedAt: 1_700_000_000 as UnixSeconds,
  };
}

export interface Collector {
  replies: Array<string | ReplyContent>;
  /** Reply texts only, in order. */
  texts(): string[];
  reply: (r: string | ReplyContent) => void;
  sent: Array<{ userId: string; text: string }>;
  deps: HandleDeps;
}

export function collector(): Collector {
  const replies: Array<string | ReplyContent> = [];
  const sent: Array<{ userId: string; text: string }> = [];
  return {
    replies,
    sent,
    texts: () => replies.map((r) => (typeof r === 'string' ? r : r.content)),
    reply: (r) => replies.push(r),
    deps: {
      selfId: SELF_ID,
      send: async (userId, text) => {
        sent.push({ userId, text });
        return { id: 'x' };
      },
    },
  };
}
