/**
 * What `relay-bot chat` prints: incoming messages, group events, lists and the help. Pure functions
 * of their arguments, so the wording is tested without a broker.
 */
import type { GroupEvent, GroupInfo } from '../../framework/relay/index.js';

export const short = (id: string): string => id.slice(0, 8);

// A line break from a peer would start a line that looks like someone else's message: shown as a mark.
const LINE_BREAK = /\r?\n|[\u2028\u2029\u0085]/g;
// Controls (C0, DEL, C1: terminal escape sequences) and format characters (bidi overrides and
// isolates, zero-width spaces and joiners, BOM, soft hyphen): text a peer could use to rewrite,
// reorder or hide what the terminal shows.
const INVISIBLE = /[\p{Cc}\p{Cf}]/gu;

/** Text a peer controls (messages, group names, error texts), safe to print as one terminal line. */
export const printable = (text: string): string =>
  text.replace(LINE_BREAK, ' \u21b5 ').replace(INVISIBLE, '');

/**
 * One peer's text printed on its own, with nothing else on the screen to impersonate (`relay-bot
 * send`): its line breaks stay, as plain newlines; everything else is cleaned as by printable().
 */
export const printableLines = (text: string): string =>
  text
    .split(LINE_BREAK)
    .map((line) => line.replace(INVISIBLE, ''))
    .join('\n');

/** `#name`, or `#` and the first 8 hex digits of the group id for a group without a (known) name. */
export const groupLabel = (groupId: string, name: string | undefined): string =>
  `#${name === undefined ? short(groupId) : printable(name)}`;

export type Conversation = { kind: 'direct'; id: string } | { kind: 'group'; id: string };

export const HELP = [
  'commands (any other line is sent to the current conversation, /ping and /echo included):',
  '  /peers                          direct conversations; /switch <id|prefix|number>, /add <user_id>',
  '  /groups                         the groups you are in',
  '  /group create <name> <user_id>...  create a group (name: one word), invite users, switch to it',
  '  /group use <group_id|name|number>  switch to a group',
  '  /members                        members of the current group',
  '  /invite <user_id>...            invite users to the current group',
  '  /remove <user_id>...            remove members from the current group',
  '  /leave                          leave the current group',
  'messages show a number, (n); with it:',
  '  /react <n> <emoji>              react to message n (/unreact <n> <emoji> takes it back)',
  '  /edit <n> <text>, /delete <n>   change or retract your message n (the "(n) sent" ones)',
  '  /choose <k>, /choose <n> <k>    answer the newest buttons here with choice k, or those of message n',
  '  /cancel <n>                     cancel task n',
  "  /profile [user_id]              a bot's signed profile: description and commands (Tab completes them)",
  '  /attach <path>                  send a file (received files are saved under attachments.downloadDir)',
  '  /chathelp  /quit',
  '  //text                          sends /text as it is: //leave sends /leave to a bot, //echo hi sends /echo hi',
  'user ids: 32 hex characters, or a unique prefix (4+) of a peer or member',
].join('\n');

export function promptOf(current: Conversation | undefined, label: (groupId: string) => string): string {
  if (!current) return '> ';
  return `${current.kind === 'group' ? label(current.id) : short(current.id)}> `;
}

const ids = (list: readonly string[]): string => list.map(short).join(', ');

/** One line per event; `label` is the group's label as the chat knows it. */
export function groupEventLine(e: GroupEvent, label: string): string {
  switch (e.kind) {
    case 'created':
      return `* created ${label} (${e.groupId}) with ${e.members.length} members`;
    case 'joined':
      return `* joined ${label} (${e.groupId}), invited by ${short(e.invitedBy)}; members: ${ids(e.members)}`;
    case 'members': {
      const parts = [
        ...(e.added.length ? [`added ${ids(e.added)}`] : []),
        ...(e.removed.length ? [`removed ${ids(e.removed)}`] : []),
      ];
      return `* ${label}: ${parts.join('; ')} (epoch ${e.epoch})`;
    }
    case 'rejoined':
      return `* ${label}: re-added after falling behind (epoch ${e.epoch})`;
    case 'left':
      return e.reason === 'left' ? `* you left ${label}` : `* you were removed from ${label}`;
  }
}

export function groupListLines(
  groups: readonly GroupInfo[],
  current: Conversation | undefined,
  label: (g: GroupInfo) => string,
): string[] {
  if (groups.length === 0) return ['no groups yet: /group create <name> <user_id>...'];
  return groups.map((g, i) => {
    const mark = current?.kind === 'group' && current.id === g.groupId ? '*' : ' ';
    return `${mark} ${i + 1}. ${label(g)}  ${g.groupId}  ${g.members.length} members`;
  });
}

export function memberLines(info: GroupInfo, self: string, label: string): string[] {
  return [
    `${label}: ${info.members.length} members, epoch ${info.epoch}`,
    ...info.members.map((m) => {
      const notes = [
        ...(m.userId === self ? ['you'] : []),
        ...(m.userId === info.committer ? ['committer'] : []),
      ];
      return `  ${m.userId}${notes.length ? ` (${notes.join(', ')})` : ''}`;
    }),
  ];
}
