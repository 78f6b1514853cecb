/**
 * The help plugin: answers `/help` with a list generated from the command metadata and
 * `/help <command>` with that command's usage line, description and aliases.
 *
 * BotRuntime already has this as its built-in /help (same rendering, framework/bot/help.ts). Use
 * the plugin to change it: another command name, a header or footer, or hiding guarded commands.
 * Pass `help: false` to BotRuntime when the plugin takes the name `help`, so the listing does not
 * show the built-in one.
 *
 *   new BotRuntime(bot, { help: false, plugins: [helpPlugin({ header: 'Questions? Ask @ops', hideGuarded: true })] });
 *
 * In a group it lists the commands as `/cmd@bot`, the form that reaches this bot when other bots
 * in the group have commands of the same name (PROTOCOL.md §9).
 */
import { helpAnswer, type BotContext, type CommandInfo, type Middleware } from '../framework/bot/index.js';
import { ConfigError } from '../framework/relay/index.js';

/** helpPlugin()'s options: the command it answers, a header and footer, and whether guarded commands are listed. */
export interface HelpPluginOptions {
  /** The command it answers (default `help`). */
  command?: string;
  /** A line shown above the command list. */
  header?: string;
  /** A line shown below the command list. */
  footer?: string;
  /** Leave commands with a guard out of the list (`/help <command>` still explains them). */
  hideGuarded?: boolean;
}

const COMMAND_NAME = /^[a-z][a-z0-9_]{0,31}$/;

/** Middleware that answers /help with the bot's commands. */
export function helpPlugin(options: HelpPluginOptions = {}): Middleware<BotContext> {
  const command = options.command ?? 'help';
  if (!COMMAND_NAME.test(command)) {
    throw new ConfigError(`helpPlugin command ${JSON.stringify(command)} is not a valid command name`);
  }
  return (ctx, next) => {
    if (ctx.command !== command) return next();
    const own: CommandInfo = {
      name: command,
      aliases: [],
      usage: `usage: /${command} [command]`,
      description: `this list; /${command} <command> shows how to use one`,
      guarded: false,
    };
    const all = [...ctx.bot.commands.filter((c) => c.name !== command), own];
    const topic = ctx.argsText.trim();
    const rendering = ctx.conversation.kind === 'group' ? { addressAs: ctx.bot.name } : {};
    if (topic !== '') {
      ctx.reply(helpAnswer(ctx.bot, all, topic, command, rendering));
      return;
    }
    const listed = options.hideGuarded ? all.filter((c) => !c.guarded) : all;
    const lines = [
      ...(options.header !== undefined ? [options.header] : []),
      helpAnswer(ctx.bot, listed, '', command, rendering),
      ...(options.footer !== undefined ? [options.footer] : []),
    ];
    ctx.reply(lines.join('\n'));
  };
}
