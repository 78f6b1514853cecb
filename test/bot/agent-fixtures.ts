/** The agent bot, a recording poster and a runtime set up around them: agent-api and agent-streams tests. */
import {
  Bot,
  BotRuntime,
  MemoryDataStore,
  OnAction,
  OnCommand,
  OnError,
  OnReaction,
  type BotContext,
  type PostFn,
  type PostTarget,
} from '../../framework/bot/index.js';
import type { UnixSeconds } from '../../framework/relay/brand.js';
import type { ReceivedMessage } from '../../framework/relay/client.js';
import type { AppContent, ContentInput } from '../../framework/relay/content.js';
import { ALICE, collector, GROUP_ID, TOPIC_ID } from './helpers.js';

export interface Posted {
  to: PostTarget;
  content: ContentInput;
  data: Array<{ conversationId: string; json: string }>;
}

/** A stand-in for the client's commit-then-publish send: records, and commits `data` into `store`. */
export function poster(store: MemoryDataStore): { posted: Posted[]; post: PostFn } {
  const posted: Posted[] = [];
  const tx = store.transaction();
  return {
    posted,
    post: async (to, content, data) => {
      posted.push({ to, content, data });
      for (const d of data) tx.saveData(d.conversationId, d.json);
      return { id: content.id ?? 'x' };
    },
  };
}

export function message(content: AppContent, kind: 'direct' | 'group' = 'direct'): ReceivedMessage {
  const receivedAt = 1_700_000_000 as UnixSeconds;
  if (kind === 'group') {
    const conversation = { kind: 'group' as const, id: GROUP_ID, groupId: GROUP_ID, topicId: TOPIC_ID };
    return { from: ALICE, conversation, content, receivedAt };
  }
  return {
    from: ALICE,
    conversation: { kind: 'direct', id: ALICE, groupId: 'e'.repeat(64) },
    content,
    receivedAt,
  };
}

/** A controllable async iterable: push parts, then end() or fail(). */
export function source(): {
  parts: AsyncIterable<string>;
  push(p: string): void;
  end(): void;
  fail(e: Error): void;
} {
  const queue: Array<IteratorResult<string> | Error> = [];
  let wake: (() => void) | undefined;
  const put = (x: IteratorResult<string> | Error): void => {
    queue.push(x);
    wake?.();
  };
  return {
    parts: {
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<string>> => {
          while (queue.length === 0) await new Promise<void>((r) => (wake = r));
          const x = queue.shift()!;
          if (x instanceof Error) throw x;
          return x;
        },
      }),
    },
    push: (p) => put({ value: p, done: false }),
    end: () => put({ value: undefined, done: true }),
    fail: (e) => put(e),
  };
}

@Bot({ name: 'Agent', typing: false })
export class AgentBot {
  ids: string[] = [];
  errors: unknown[] = [];
  chosen: Array<{ id: string; messageId: string; via: string }> = [];
  reactions: Array<{ emoji: string; messageId: string; removed: boolean; via: string }> = [];
  stream = source();
  streamed: string | undefined;

  @OnCommand('ask')
  ask(ctx: BotContext): void {
    const first = ctx.reply('first');
    ctx.edit(first, 'first, edited');
    ctx.delete(first);
    ctx.react('👍');
    this.ids.push(
      first,
      ctx.actions('pick one', [
        { id: 'yes', label: 'Yes' },
        { id: 'no', label: 'No' },
      ]),
    );
  }

  @OnCommand('bad', { args: '<which>' })
  bad(ctx: BotContext<{ which: string }>): void {
    const tries: Record<string, () => unknown> = {
      many: () =>
        ctx.actions(
          'p',
          Array.from({ length: 11 }, (_, i) => ({ id: `a${i}`, label: 'x' })),
        ),
      none: () => ctx.actions('p', []),
      long: () => ctx.actions('p', [{ id: 'x'.repeat(129), label: 'x' }]),
      twice: () =>
        ctx.actions('p', [
          { id: 'a', label: 'A' },
          { id: 'a', label: 'B' },
        ]),
      emoji: () => ctx.react('x'.repeat(33)),
      edit: () => ctx.edit('', 'text'),
    };
    try {
      tries[ctx.args.which]!();
    } catch (e) {
      this.errors.push(e);
    }
  }

  @OnCommand('stream')
  async streamIt(ctx: BotContext<object, { n?: number }>): Promise<void> {
    const s = await ctx.session.get();
    s.n = 1;
    ctx.reply('before');
    this.streamed = await ctx.stream(this.stream.parts);
    s.n = 2;
    ctx.reply('after');
  }

  @OnCommand('typing')
  async typing(ctx: BotContext): Promise<void> {
    await ctx.typing();
    await ctx.typing();
    ctx.reply('done');
  }

  @OnAction('yes')
  yes(ctx: BotContext): string {
    this.chosen.push({ ...ctx.action!, via: 'yes' });
    return 'you said yes';
  }

  @OnAction()
  anyAction(ctx: BotContext): void {
    this.chosen.push({ ...ctx.action!, via: 'any' });
  }

  @OnReaction('❤️')
  heart(ctx: BotContext): void {
    this.reactions.push({ ...ctx.reaction!, via: 'heart' });
  }

  @OnReaction()
  anyReaction(ctx: BotContext): void {
    this.reactions.push({ ...ctx.reaction!, via: 'any' });
  }

  @OnError()
  onError(err: Error): string {
    this.errors.push(err);
    return `failed: ${err.message}`;
  }
}

export function setup(options: ConstructorParameters<typeof BotRuntime>[1] = {}) {
  const bot = new AgentBot();
  const rt = new BotRuntime(bot, options);
  const store = new MemoryDataStore();
  const p = poster(store);
  const c = collector();
  const deps = { ...c.deps, post: p.post };
  const handle = (m: ReceivedMessage) => rt.handle(m, c.reply, deps, store.transaction());
  return { bot, rt, store, c, deps, handle, posted: p.posted };
}
