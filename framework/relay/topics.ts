/**
 * MQTT topic names of PROTOCOL.md §3:
 *   {prefix}/u/{user_id}/keys · {prefix}/u/{user_id}/inbox · {prefix}/g/{topic_id}/m
 * Topic ids come from the fixed MLS group id, not from anything that changes per epoch.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import type { GroupId, TopicId, UserId } from './brand.js';
import { concatBytes, toHex, utf8 } from './bytes.js';
import { ConfigError } from './errors.js';
import { userIdFromHex, userIdToHex } from './identity.js';
import { LABEL } from './labels.js';

/**
 * First topic level(s) of every Relay topic when none is configured: `relay/u/…`, `relay/g/…`. Peers must use
 * the same prefix to reach each other.
 */
export const DEFAULT_TOPIC_PREFIX = 'relay';

/** PROTOCOL.md §3: hex(SHA-256("relay-topic-v1" || group_id)[0..16]). */
export function topicIdForGroup(groupId: GroupId): TopicId {
  return toHex(sha256(concatBytes(utf8(LABEL.topic), groupId)).subarray(0, 16)) as TopicId;
}

// MQTT 5.0 §4.7: '+' and '#' are wildcards, topic names are at most 65535 UTF-8 bytes and must not
// contain U+0000; §4.7.2: names starting with '$' are the broker's. An empty level ('a//b', a
// leading or trailing '/') is legal MQTT but would split or collide with our layout.
const MAX_PREFIX_BYTES = 1024;

/**
 * Check a configured topic prefix. Returns it unchanged; throws ConfigError naming the problem.
 * Multi-level prefixes ('acme/relay') are allowed.
 */
export function validateTopicPrefix(prefix: string): string {
  if (typeof prefix !== 'string' || prefix.length === 0)
    throw new ConfigError('topic prefix must not be empty');
  if (utf8(prefix).length > MAX_PREFIX_BYTES) throw new ConfigError('topic prefix is too long');
  if (/[+#]/.test(prefix)) throw new ConfigError(`topic prefix must not contain MQTT wildcards: ${prefix}`);
  if (prefix.includes('\u0000')) throw new ConfigError('topic prefix must not contain U+0000');
  if (prefix.startsWith('$'))
    throw new ConfigError('topic prefix must not start with $ (reserved by brokers)');
  if (prefix.split('/').some((level) => level.length === 0)) {
    throw new ConfigError(`topic prefix must not have empty levels: ${prefix}`);
  }
  return prefix;
}

/**
 * `{prefix}/u/{user_id hex}/keys`: where a user's signed key bundle is published, retained. Throws
 * ConfigError on a bad prefix.
 */
export function keysTopic(prefix: string, userId: UserId): string {
  return `${validateTopicPrefix(prefix)}/u/${userIdToHex(userId)}/keys`;
}

/**
 * `{prefix}/u/{user_id hex}/inbox`: where others publish sealed envelopes for this user. Throws ConfigError
 * on a bad prefix.
 */
export function inboxTopic(prefix: string, userId: UserId): string {
  return `${validateTopicPrefix(prefix)}/u/${userIdToHex(userId)}/inbox`;
}

/**
 * `{prefix}/g/{topic_id}/m`: the message topic of one MLS group (topicIdForGroup), stable across epochs.
 * Throws ConfigError on a bad prefix.
 */
export function groupTopic(prefix: string, topicId: TopicId): string {
  return `${validateTopicPrefix(prefix)}/g/${topicId}/m`;
}

/**
 * What parseTopic found: a user's keys or inbox topic with its user id, or a group topic with its topic id.
 */
export type ParsedTopic =
  | { readonly kind: 'keys' | 'inbox'; readonly userId: UserId }
  | { readonly kind: 'group'; readonly topicId: TopicId };

const HEX32 = /^[0-9a-f]{32}$/;

/**
 * Classify an incoming topic name under `prefix`; undefined for anything that is not exactly one of
 * our three shapes (uppercase hex included, since we never publish it).
 */
export function parseTopic(prefix: string, topic: string): ParsedTopic | undefined {
  return parseUnder(`${validateTopicPrefix(prefix)}/`, topic);
}

/**
 * parseTopic with the prefix checked once: for the inbound path, which classifies every message
 * under the same prefix (checking it costs a UTF-8 encode, a regex and a split each time).
 */
export function topicParser(prefix: string): (topic: string) => ParsedTopic | undefined {
  const head = `${validateTopicPrefix(prefix)}/`;
  return (topic) => parseUnder(head, topic);
}

function parseUnder(head: string, topic: string): ParsedTopic | undefined {
  if (!topic.startsWith(head)) return undefined;
  const levels = topic.slice(head.length).split('/');
  if (levels.length !== 3) return undefined;
  const [space, id, leaf] = levels as [string, string, string];
  if (!HEX32.test(id)) return undefined;
  if (space === 'u' && (leaf === 'keys' || leaf === 'inbox'))
    return { kind: leaf, userId: userIdFromHex(id) };
  if (space === 'g' && leaf === 'm') return { kind: 'group', topicId: id as TopicId };
  return undefined;
}

/**
 * Inbox and group topics carry QoS 1 only (PROTOCOL.md §3): a delivery at QoS 0 on them is dropped
 * unread, since it costs its sender nothing and bypasses the receive maximum.
 */
export function isQos1OnlyTopic(prefix: string, topic: string): boolean {
  return isQos1Only(parseTopic(prefix, topic));
}

/** isQos1OnlyTopic of a topic already parsed. */
export function isQos1Only(parsed: ParsedTopic | undefined): boolean {
  return parsed?.kind === 'inbox' || parsed?.kind === 'group';
}
