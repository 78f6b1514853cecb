/**
 * The bot the replica chaos test runs under `relay-bot start` (bot.module): the echo bot's `/echo`
 * and `/ping`, plus `/remind <ms> <text…>`, which schedules `text` back to the sender after `ms`
 * through ctx.schedule, so the scheduler duty (a lease among replicas) is exercised. The bundled
 * echo bot schedules nothing; a second @Bot class next to it would answer commands it does not know.
 */
import { Bot, OnCommand, type BotContext } from '../../index.js';

/** What the scheduler sends back for `/remind <ms> <text>`: the test matches reminders by it. */
export const reminderText = (text: string): string => `reminder: ${text}`;

@Bot({ name: 'chaos-echo', description: 'echo bot with reminders, for the replica chaos test' })
export class ChaosEchoBot {
  @OnCommand('ping', { description: 'answers pong' })
  ping(): string {
    return 'pong';
  }

  @OnCommand('echo', { args: '<text...>', description: 'repeats the text' })
  echo(ctx: BotContext<{ text: string }>): string {
    return ctx.args.text;
  }

  @OnCommand('remind', { args: '<ms:int> <text...>', description: 'sends the text back after ms' })
  remind(ctx: BotContext<{ ms: number; text: string }>): string {
    ctx.schedule({ text: reminderText(ctx.args.text), inMs: ctx.args.ms });
    return `scheduled ${ctx.args.text}`;
  }
}

export default ChaosEchoBot;
