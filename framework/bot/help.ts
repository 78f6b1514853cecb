/**
 * The /help answer, generated from the command metadata: used by the runtime's built-in /help and
 * by plugins/help. `/help` lists every command; `/help <command>` (or an alias, with or without the
 * slash) shows that command's usage line, description and aliases.
 */
import { asciiLower } from './args.js';

/** One command as /help lists it: usage, aliases and description. */
export interface HelpEntry {
  readonly usage: string;
  readonly aliases: readonly string[];
  readonly description?: string;
}

/** What a runtime tells handlers and plugins about one of its commands (ctx.bot.commands). */
export interface CommandInfo extends HelpEntry {
  readonly name: string;
  /** True when a guard decides who may use it. */
  readonly guarded: boolean;
}

/** How renderHelp() writes the list (addressed `/cmd@name` form in groups). */
export interface HelpOptions {
  /**
   * Show commands as `/cmd@name`: in a group, where a bare `/cmd` reaches every bot that has it
   * (PROTOCOL.md §9), the addressed form is the one that reaches this bot.
   */
  addressAs?: string;
}

/** `usage: /cmd args` → `usage: /cmd@name args`. */
function addressed(usage: string, addressAs: string | undefined): string {
  return addressAs === undefined ? usage : usage.replace(/^(usage: \/[a-z0-9_]+)/, `$1@${addressAs}`);
}

/** The /help text for a bot: its description, then one line per command. */
export function renderHelp(
  bot: { name: string; description?: string },
  entries: readonly HelpEntry[],
  options: HelpOptions = {},
): string {
  const title = bot.description ? `${bot.name} — ${bot.description}` : bot.name;
  const lines = entries.map((e) => {
    // The usage line without its "usage: " prefix is the command as one would type it.
    const typed = addressed(e.usage, options.addressAs).replace(/^usage: /, '');
    const aliases = e.aliases.length ? ` (also ${e.aliases.map((a) => `/${a}`).join(', ')})` : '';
    return `${typed}${e.description ? ` — ${e.description}` : ''}${aliases}`;
  });
  return [title, ...lines].join('\n');
}

/** The help of one command: usage line, then description and aliases when there are any. */
export function renderCommandHelp(entry: HelpEntry, options: HelpOptions = {}): string {
  return [
    addressed(entry.usage, options.addressAs),
    ...(entry.description ? [entry.description] : []),
    ...(entry.aliases.length ? [`also: ${entry.aliases.map((a) => `/${a}`).join(', ')}`] : []),
  ].join('\n');
}

/**
 * Finds a command by name or alias; `topic` may start with `/`, may carry an `@bot` suffix (as
 * copied from a group's help) and is matched case-insensitively.
 */
export function findCommand<E extends CommandInfo>(commands: readonly E[], topic: string): E | undefined {
  const name = asciiLower(topic.replace(/^\//, '').replace(/@[A-Za-z0-9_-]*$/, ''));
  return commands.find((c) => c.name === name || c.aliases.includes(name));
}

/** The answer to `/help` (or `/<helpCommand>`) with `argsText` after it. */
export function helpAnswer(
  bot: { name: string; description?: string },
  commands: readonly CommandInfo[],
  argsText: string,
  helpCommand = 'help',
  options: HelpOptions = {},
): string {
  // Only the first word matters; the limit keeps a long line from being split whole.
  const topic = argsText.trim().split(/\s+/, 1)[0] ?? '';
  if (topic === '') return renderHelp(bot, commands, options);
  const cmd = findCommand(commands, topic);
  // The topic is echoed only when it is short and plain; anything else is not worth quoting back.
  if (!cmd) {
    const shown = /^\/?[A-Za-z0-9_]{1,32}$/.test(topic) ? ` /${topic.replace(/^\//, '')}` : '';
    const at = options.addressAs !== undefined ? `@${options.addressAs}` : '';
    return `no command${shown} — try /${helpCommand}${at}`;
  }
  return renderCommandHelp(cmd, options);
}
