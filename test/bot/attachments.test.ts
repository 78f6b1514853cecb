/**
 * @OnAttachment routing and ctx.attach() in the runtime, without a broker: the first handler whose
 * media type (exact or a prefix ending in '/') matches answers; a text message reaches none of them;
 * ctx.attach() replies with the attachment content, and a large file without a store is a ConfigError.
 */
import { pino } from 'pino';
import { Bot, BotRuntime, OnAttachment, OnCommand, type BotContext } from '../../framework/bot/index.js';
import type { UnixSeconds } from '../../framework/relay/brand.js';
import type { ReceivedMessage } from '../../framework/relay/client.js';
import { ConfigError, sealAttachment, type AppContent } from '../../framework/relay/index.js';
import { ALICE, collector, textMessage } from './helpers.js';

function message(content: AppContent): ReceivedMessage {
  return {
    from: ALICE,
    conversation: { kind: 'direct', id: ALICE, groupId: 'e'.repeat(64) },
    content,
    receivedAt: 1_700_000_000 as UnixSeconds,
  };
}

@Bot({ name: 'routing', typing: false })
class RoutingBot {
  errors: unknown[] = [];

  @OnAttachment('image/')
  image(ctx: BotContext): string {
    return `image ${ctx.attachments[0]!.name}`;
  }

  @OnAttachment('application/pdf')
  pdf(ctx: BotContext): string {
    return `pdf ${ctx.attachments[0]!.name}`;
  }

  @OnAttachment()
  other(ctx: BotContext): string {
    return `other ${ctx.attachments[0]!.mediaType}`;
  }

  @OnCommand('big')
  async big(ctx: BotContext): Promise<void> {
    try {
      await ctx.attach({ name: 'big.bin', bytes: new Uint8Array(70_000) });
    } catch (e) {
      this.errors.push(e);
      ctx.reply('refused');
    }
  }

  @OnCommand('small')
  async small(ctx: BotContext): Promise<void> {
    await ctx.attach({ name: 'note.txt', bytes: new TextEncoder().encode('hi') });
  }
}

test('@OnAttachment picks by media type; ctx.attach() replies with attachment content', async () => {
  const bot = new RoutingBot();
  const runtime = new BotRuntime(bot, { logger: pino({ level: 'silent' }) });
  const c = collector();
  for (const [name, mediaType] of [
    ['a.png', 'image/png'],
    ['b.pdf', 'application/pdf'],
    ['c.zip', 'application/zip'],
  ] as const) {
    const content = await sealAttachment({ name, mediaType, bytes: new Uint8Array([1, 2, 3]) });
    await runtime.handle(message({ ...content, id: `m-${name}` }), c.reply, c.deps);
  }
  await runtime.handle(textMessage('just text'), c.reply, c.deps);
  expect(c.texts()).toEqual(['image a.png', 'pdf b.pdf', 'other application/zip']);

  await runtime.handle(textMessage('/small'), c.reply, c.deps);
  const sent = c.raw.at(-1) as AppContent;
  expect(sent).toMatchObject({ type: 'attachment', name: 'note.txt', mime: 'text/plain', size: 2 });

  await runtime.handle(textMessage('/big'), c.reply, c.deps);
  expect(c.texts().at(-1)).toBe('refused');
  expect(bot.errors[0]).toBeInstanceOf(ConfigError);
  expect(String(bot.errors[0])).toMatch(/attachments\.store/);
});
