/**
 * The echo bot, the one the quick start runs: `/ping` → `pong`, `/echo <text…>` → the text, and
 * the built-in `/help`.
 */
import { Bot, OnCommand, type BotContext } from '../../index.js';

/** The bundled echo bot: answers /ping with pong and repeats what follows /echo. */
@Bot({ name: 'echo', description: 'answers /ping and repeats what you /echo' })
export class EchoBot {
  @OnCommand('ping', { description: 'answers pong' })
  ping(): string {
    return 'pong';
  }

  @OnCommand('echo', { args: '<text...>', description: 'repeats the text' })
  echo(ctx: BotContext<{ text: string }>): string {
    return ctx.args.text;
  }
}

export default EchoBot;
