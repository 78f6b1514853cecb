/** The built-in /help answer, used when a bot does not declare its own `help` command. */
export interface HelpEntry {
  readonly usage: string;
  readonly aliases: readonly string[];
  readonly description?: string;
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
