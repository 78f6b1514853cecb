/**
 * Bots' profiles (PROTOCOL.md §8: key 7 of the signed KeyBundle) as the chat uses them: /profile
 * prints one, and the commands of the profiles loaded for the current conversation are offered as
 * tab completions on a terminal.
 */
import type { Profile, RelayClient } from '../../framework/relay/index.js';
import type { Conversation } from './format.js';

/** What the book uses of the client. */
export type ProfileClient = Pick<RelayClient, 'verifyPeer'>;

/** Profiles kept for completion; the chat knows few users, this only bounds a long session. */
const MAX_PROFILES = 256;

/** What /profile shows of a user's bundle. */
export interface SeenProfile {
  displayName?: string;
  profile?: Profile;
}

export class ProfileBook {
  private readonly byUser = new Map<string, SeenProfile>();

  constructor(private readonly client: ProfileClient) {}

  /** Fetches and verifies the user's current bundle (errors propagate), and keeps its profile. */
  async load(userId: string): Promise<SeenProfile> {
    const v = await this.client.verifyPeer(userId);
    const seen: SeenProfile = {
      ...(v.displayName !== undefined ? { displayName: v.displayName } : {}),
      ...(v.profile !== undefined ? { profile: v.profile } : {}),
    };
    this.byUser.delete(userId);
    this.byUser.set(userId, seen);
    if (this.byUser.size > MAX_PROFILES) {
      const [oldest] = this.byUser.keys();
      if (oldest !== undefined) this.byUser.delete(oldest);
    }
    return seen;
  }

  /** Loads quietly in the background (a terminal's completions); failures only mean no completions. */
  preload(userIds: readonly string[]): void {
    for (const id of userIds) {
      if (!this.byUser.has(id)) void this.load(id).catch(() => undefined);
    }
  }

  /** The command names the given users' profiles offer, without the slash, once each. */
  commandsOf(userIds: readonly string[]): string[] {
    const names = new Set<string>();
    for (const id of userIds) for (const c of this.byUser.get(id)?.profile?.commands ?? []) names.add(c.name);
    return [...names];
  }
}

/** Who can answer commands in a conversation: the peer, or the group's members the chat loaded. */
export function conversationUsers(c: Conversation | undefined, members: readonly string[]): string[] {
  if (!c) return [];
  return c.kind === 'direct' ? [c.id] : [...members];
}

/**
 * readline's completer: the chat's own commands and the bots' (a bot command named like one of the
 * chat's is offered as `//name`, which sends it to the bot). Completes only the first word.
 */
export function completeLine(
  line: string,
  localCommands: readonly string[],
  botCommands: readonly string[],
): [string[], string] {
  if (!line.startsWith('/') || /\s/.test(line)) return [[], line];
  const local = new Set(localCommands);
  const bot = botCommands.map((name) => (local.has(`/${name}`) ? `//${name}` : `/${name}`));
  const all = [...new Set([...localCommands, ...bot])].sort();
  const hits = all.filter((c) => c.startsWith(line));
  return [hits, line];
}
