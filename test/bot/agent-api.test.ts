/**
 * The agent API of BotContext: react/edit/delete/actions (replies with ids), @OnAction/@OnReaction
 * routing, and the checks on agent options (streams, typing and detached runs: agent-streams.test.ts).
 */
import { Bot, BotRuntime, OnAction, OnReaction, type BotContext } from '../../framework/bot/index.js';
import type { AppContent } from '../../framework/relay/content.js';
import { ArgumentError, ConfigError } from '../../framework/relay/errors.js';
import { collector, textMessage } from './helpers.js';
import { message, setup, AgentBot } from './agent-fixtures.js';

describe('replies with ids, reactions, edits, deletes, actions', () => {
  test('each is a reply committed with the message; ctx.reply() and actions() return the ids they gave', async () => {
    const { bot, c, handle } = setup();
    await handle(textMessage('/ask', { id: 'q1' }));
    const [first, actionsId] = bot.ids;
    expect(c.raw).toEqual([
      { content: 'first', replyTo: 'q1', id: first },
      { type: 'edit', content: 'first, edited', replyTo: first, id: expect.any(String) },
      { type: 'delete', content: '', replyTo: first, id: expect.any(String) },
      { type: 'reaction', content: '👍', replyTo: 'q1', id: expect.any(String) },
      {
        type: 'actions',
        content: 'pick one',
        actions: [
          { id: 'yes', label: 'Yes' },
          { id: 'no', label: 'No' },
        ],
        replyTo: 'q1',
        id: actionsId,
      },
    ]);
    const ids = c.raw.map((r) => (r as { id: string }).id);
    expect(new Set(ids).size).toBe(5);
  });

  test.each(['many', 'none', 'long', 'twice', 'emoji', 'edit'])(
    'bad input %s is an ArgumentError at the call',
    async (which) => {
      const { bot, c, handle } = setup();
      await handle(textMessage(`/bad ${which}`));
      expect(bot.errors).toHaveLength(1);
      expect(bot.errors[0]).toBeInstanceOf(ArgumentError);
      expect(c.raw).toEqual([]);
    },
  );

  test('@OnAction(id) gets its action, @OnAction() the others; ctx.action names the actions message', async () => {
    const { bot, c, handle } = setup();
    await handle(message({ type: 'action', content: 'yes', replyTo: 'act1', id: 'c1' }));
    await handle(message({ type: 'action', content: 'no', replyTo: 'act1', id: 'c2' }, 'group'));
    expect(bot.chosen).toEqual([
      { id: 'yes', messageId: 'act1', via: 'yes' },
      { id: 'no', messageId: 'act1', via: 'any' },
    ]);
    expect(c.replies).toEqual([{ content: 'you said yes', replyTo: 'c1' }]);
  });

  test('@OnReaction(emoji) and @OnReaction(); a text message reaches neither', async () => {
    const { bot, handle } = setup();
    await handle(message({ type: 'reaction', content: '❤️', replyTo: 'm1' }));
    await handle(message({ type: 'reaction', content: '👍', replyTo: 'm2', remove: true }));
    await handle(textMessage('❤️'));
    expect(bot.reactions).toEqual([
      { emoji: '❤️', messageId: 'm1', removed: false, via: 'heart' },
      { emoji: '👍', messageId: 'm2', removed: true, via: 'any' },
    ]);
  });

  test('ctx.message carries the typed content', async () => {
    let seen: AppContent | undefined;
    @Bot({ name: 'Typed' })
    class Typed {
      @OnAction()
      act(ctx: BotContext): void {
        seen = ctx.message!.content;
      }
    }
    const rt = new BotRuntime(new Typed());
    const c = collector();
    await rt.handle(message({ type: 'action', content: 'go', replyTo: 'a1' }), c.reply, c.deps);
    expect(seen).toEqual({ type: 'action', content: 'go', replyTo: 'a1' });
  });
});

describe('options', () => {
  test('typing options are checked where they are given; @OnAction/@OnReaction arguments too', () => {
    expect(() => Bot({ name: 'x', typing: { everyMs: 100 } })).toThrow(ConfigError);
    expect(() => Bot({ name: 'x', typing: { afterMs: -1 } })).toThrow(ConfigError);
    expect(() => new BotRuntime(new AgentBot(), { typing: { afterMs: 1.5 } })).toThrow(ConfigError);
    expect(() => OnAction('x'.repeat(129))).toThrow(ConfigError);
    expect(() => OnReaction('')).toThrow(ConfigError);
    expect(new BotRuntime(new AgentBot()).plan.typing).toBe(false);
    expect(new BotRuntime(new AgentBot(), { typing: {} }).plan.typing).toEqual({
      afterMs: 1000,
      everyMs: 5000,
    });
  });
});
