/**
 * The /help answer, generated from the command metadata: used by the runtime's built-in /help and
 * by plugins/help. `/help` lists every command; `/help <command>` (or an alias, with or without the
 * slash) shows that command's usage line, description and aliases.
 */
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

export function renderHelp(
  bot: { name: string; description?: string },
  entries: readonly HelpEntry[],
): string {
  const title = bot.description ? `${bot.name} — ${bot.description}` : bot.name;
  const lines = entries.map((e) => {
    // The usage line without its "usage: " prefix is the command as one would type it.
    const typed = e.usage.replace(/^usage: /, '');
    const aliases = e.aliases.length ? ` (also ${e.aliases.map((a) => `/${a}`).join(', ')})` : '';
    return `${typed}${e.description ? ` — ${e.description}` : ''}${aliases}`;
  });
  return [title, ...lines].join('\n');
}

/** The help of one command: usage line, then description and aliases when there are any. */
export function renderCommandHelp(entry: HelpEntry): string {
  return [
    entry.usage,
    ...(entry.description ? [entry.description] : []),
    ...(entry.aliases.length ? [`also: ${entry.aliases.map((a) => `/${a}`).join(', ')}`] : []),
  ].join('\n');
}

/** Finds a command by name or alias; `topic` may start with `/` and is matched case-insensitively. */
export function findCommand<E extends CommandInfo>(commands: readonly E[], topic: string): E | undefined {
  const name = topic.replace(/^\//, '').replace(/[A-Z]/g, (c) => c.toLowerCase());
  return commands.find((c) => c.name === name || c.aliases.includes(name));
}

/** The answer to `/help` (or `/<helpCommand>`) with `argsText` after it. */
export function helpAnswer(
  bot: { name: string; description?: string },
  commands: readonly CommandInfo[],
  argsText: string,
  helpCommand = 'help',
): string {
  const topic = argsText.trim().split(/\s+/)[0] ?? '';
  if (topic === '') return renderHelp(bot, commands);
  const cmd = findCommand(commands, topic);
  // The topic is echoed only when it is short and plain; anything else is not worth quoting back.
  if (!cmd) {
    const shown = /^\/?[A-Za-z0-9_]{1,32}$/.test(topic) ? ` /${topic.replace(/^\//, '')}` : '';
    return `no command${shown} — try /${helpCommand}`;
  }
  return renderCommandHelp(cmd);
}
