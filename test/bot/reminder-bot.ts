/**
 * What the runtime tests (test/bot/runtime*.test.ts) share: ReminderBot, a runtime around it with an
 * 'admin' guard for ALICE, and say(), which hands the runtime one text message and collects replies.
 */
import { Bot, BotRuntime, OnCommand, OnMessage, type BotContext } from '../../framework/bot/index.js';
import type { UserIdHex } from '../../framework/relay/brand.js';
import { ALICE, collector, textMessage, type Collector } from './helpers.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

@Bot({ name: 'ReminderBot', description: 'reminds you of things' })
export class ReminderBot {
  seen: BotContext[] = [];

  @OnCommand('remind', { aliases: ['r'], description: 'set a reminder', args: '<minutes:int> <text...>' })
  remind(ctx: BotContext<{ minutes: number; text: string }>): string {
    this.seen.push(ctx);
    return `ok: ${ctx.args.text} in ${ctx.args.minutes} min`;
  }

  @OnCommand('whoami')
  whoami(ctx: BotContext): void {
    ctx.reply({
      content: `${ctx.sender} ${ctx.conversation.kind}:${ctx.conversation.id}`,
      replyTo: 'custom',
    });
  }

  @OnCommand('ban', { guard: 'admin', args: '<who:user>' })
  ban(ctx: BotContext<{ who: UserIdHex }>): string {
    return `banned ${ctx.args.who}`;
  }

  @OnCommand('secret', { guard: (ctx) => ctx.sender === ALICE })
  secret(): string {
    return 'the secret';
  }

  @OnCommand('boom')
  boom(): void {
    throw new Error('kaboom');
  }

  @OnCommand('slow')
  async slow(ctx: BotContext): Promise<void> {
    await sleep(150);
    ctx.reply('too late');
  }

  @OnCommand('tell', { args: '<who:user> <text...>' })
  async tell(ctx: BotContext<{ who: UserIdHex; text: string }>): Promise<string> {
    await ctx.send(ctx.args.who, ctx.args.text);
    return 'sent';
  }

  @OnMessage(/^remind me in (\d+)/i)
  natural(ctx: BotContext): string {
    return `natural ${ctx.match?.[1]}`;
  }

  @OnMessage((ctx) => ctx.text.includes('thanks'))
  thanks(): string {
    return "you're welcome";
  }

  @OnMessage()
  fallback(ctx: BotContext): void {
    ctx.reply(`echo: ${ctx.text}`);
  }
}

export function runtime(
  options: ConstructorParameters<typeof BotRuntime>[1] = {},
  bot: object = new ReminderBot(),
): BotRuntime {
  return new BotRuntime(bot, { guards: { admin: (ctx) => ctx.sender === ALICE }, ...options });
}

export async function say(
  rt: BotRuntime,
  text: string,
  opts: Parameters<typeof textMessage>[1] = {},
): Promise<Collector> {
  const c = collector();
  await rt.handle(textMessage(text, opts), c.reply, c.deps);
  return c;
}
