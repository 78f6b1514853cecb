/**
 * Turning what the user typed into a user id or a group: full ids, unique prefixes of ids the chat
 * knows, list numbers and group names. A ChatError's message is printed as it is.
 */
import type { GroupInfo } from '../../framework/relay/index.js';
import { isUserIdHex } from '../user-id.js';

/** A mistake in a chat command: printed to the user, the chat goes on. */
export class ChatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChatError';
  }
}

const MIN_PREFIX = 4;

/** A 1-based list number ("2"), not a hex prefix: fewer than MIN_PREFIX digits. */
function listIndex(ref: string, length: number): number | undefined {
  if (!/^\d{1,3}$/.test(ref)) return undefined;
  const n = Number(ref);
  return n >= 1 && n <= length ? n - 1 : undefined;
}

/** A full user id, or a unique prefix (4+ hex digits) of one in `known`. */
export function resolveUser(ref: string, known: Iterable<string>): string {
  const r = ref.toLowerCase();
  if (isUserIdHex(r)) return r;
  const hits = r.length >= MIN_PREFIX ? [...new Set(known)].filter((k) => k.startsWith(r)) : [];
  if (hits.length === 1) return hits[0]!;
  if (hits.length > 1) {
    throw new ChatError(`"${ref}" matches several users (${hits.join(', ')}). Fix: give more of the user id`);
  }
  throw new ChatError(
    `"${ref}" is not a user id. Fix: give the 32 hex characters that \`relay-bot id\` prints (\`relay-bot id --client\` for a person's CLI), or a unique prefix of a peer's or member's id`,
  );
}

export function resolveUsers(refs: readonly string[], known: Iterable<string>): string[] {
  const list = [...known];
  return [...new Set(refs.map((r) => resolveUser(r, list)))];
}

/** A peer by full id, unique prefix or 1-based number in /peers. */
export function findPeer(peers: readonly string[], ref: string): string | undefined {
  const i = listIndex(ref, peers.length);
  if (i !== undefined) return peers[i];
  const hits = peers.filter((p) => p.startsWith(ref.toLowerCase()));
  return hits.length === 1 ? hits[0] : undefined;
}

function groupMatches(groups: readonly GroupInfo[], ref: string, name: (g: GroupInfo) => string | undefined) {
  const r = ref.toLowerCase();
  const bare = r.startsWith('#') ? r.slice(1) : r;
  const exact = groups.filter((g) => g.groupId === bare || name(g)?.toLowerCase() === bare);
  if (exact.length > 0 || bare.length < MIN_PREFIX) return exact;
  return groups.filter((g) => g.groupId.startsWith(bare));
}

/** A group by id, unique id prefix (4+), name (with or without '#') or 1-based number in /groups. */
export function findGroup(
  groups: readonly GroupInfo[],
  ref: string,
  name: (g: GroupInfo) => string | undefined = (g) => g.name,
): GroupInfo {
  const i = listIndex(ref, groups.length);
  if (i !== undefined) return groups[i]!;
  const hits = groupMatches(groups, ref, name);
  if (hits.length === 1) return hits[0]!;
  if (hits.length > 1) {
    const ids = hits.map((g) => g.groupId).join(', ');
    throw new ChatError(`"${ref}" matches several groups (${ids}). Fix: give more of the group id`);
  }
  const known =
    groups.length === 0 ? 'you are in no group' : `you are in ${groups.length}; /groups lists them`;
  throw new ChatError(`no group "${ref}" (${known}). Fix: give a group id, name or number from /groups`);
}
