/**
 * The profile a bot publishes with its key bundle (PROTOCOL.md §8, KeyBundle key 7), built from what
 * its decorators say: the @Bot description and each command's name, argument spec and description,
 * as /help shows them. Pure; the runtime hands the result to the client (BotRuntime.profile).
 */
import { ArgumentError, ConfigError } from '../relay/errors.js';
import { formatProfile, type Profile, type ProfileCommand } from '../relay/profile.js';
import type { BotPlan, PlannedCommand } from './scan.js';

/** `usage: /remind <minutes:int> <text…>` → `<minutes:int> <text…>`; undefined when it takes none. */
function argsOf(c: PlannedCommand): string | undefined {
  const head = `usage: /${c.name}`;
  const rest = c.usage.startsWith(head) ? c.usage.slice(head.length).trim() : '';
  return rest === '' ? undefined : rest;
}

/**
 * The bot's profile: `bot: true`, the @Bot description and every command once (aliases are for
 * typing, not for the menu). ConfigError naming the fix when it would not fit in 8 KiB.
 */
export function botProfile(plan: Pick<BotPlan, 'description' | 'commands'>): Profile {
  const commands = plan.commands.map((c): ProfileCommand => {
    const args = argsOf(c);
    return {
      name: c.name,
      ...(args !== undefined ? { args } : {}),
      ...(c.description !== undefined ? { description: c.description } : {}),
    };
  });
  const profile: Profile = {
    bot: true,
    ...(plan.description !== undefined ? { description: plan.description } : {}),
    commands,
  };
  try {
    formatProfile(profile);
  } catch (e) {
    if (!(e instanceof ArgumentError)) throw e;
    throw new ConfigError(
      `${e.message.replace(/^the profile/, "the bot's profile (its @Bot and @OnCommand descriptions)")}`,
    );
  }
  return profile;
}
