/**
 * The command `relay-bot start` suggests trying first: every bot used to be shown `/ping`, which
 * most bots do not have (they answered "unknown command").
 */
import type { CommandInfo } from '../index.js';

/** `/ping` when the bot has it, else its first unguarded command that needs no argument, else `/help`. */
export function exampleCommand(commands: readonly CommandInfo[]): string {
  const open = commands.filter((c) => !c.guarded);
  const ping = open.find((c) => c.name === 'ping' || c.aliases.includes('ping'));
  if (ping) return '/ping';
  const bare = open.find((c) => !c.usage.includes('<'));
  return `/${bare?.name ?? 'help'}`;
}
