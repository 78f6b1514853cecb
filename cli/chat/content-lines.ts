/**
 * How the chat words each PROTOCOL.md §8 content type. Pure functions of their arguments (text a peer
 * controls goes through printable()), so the wording is tested without a broker. `who` is the
 * sender's tag as the chat prints it: `[bbbbbbbb]` or `[#team bbbbbbbb]`.
 */
import type {
  AttachmentContent,
  ContentAction,
  ProfileCommand,
  TaskContent,
} from '../../framework/relay/index.js';
import { printable, short } from './format.js';
import type { MessageRef } from './refs.js';

const SNIPPET_CHARS = 40;

/** `[bbbbbbbb]` in a direct conversation, `[#team bbbbbbbb]` in a group. */
export function senderTag(from: string, groupLabel?: string): string {
  return groupLabel === undefined ? `[${short(from)}]` : `[${groupLabel} ${short(from)}]`;
}

/** A short quote of a message's text: `"hello th…"`. */
function snippet(text: string): string {
  const t = printable(text);
  return `"${t.length > SNIPPET_CHARS ? `${t.slice(0, SNIPPET_CHARS - 1)}…` : t}"`;
}

/** A message's reference and a short quote of it: `(3) "hello th…"`. */
export function quote(ref: MessageRef): string {
  return `(${ref.n}) ${ref.deleted ? '(deleted)' : snippet(ref.text)}`;
}

const target = (ref: MessageRef | undefined): string => (ref ? quote(ref) : 'a message not shown here');

export function textLine(n: number, who: string, text: string): string {
  return `(${n}) ${who} ${printable(text)}`;
}

/** What the chat prints after sending: the number to /edit or /delete the message by. */
export function sentLine(n: number): string {
  return `(${n}) sent`;
}

export function typingLine(who: string): string {
  return `${who} is typing…`;
}

/** A stream on a terminal while it is written: the text so far, then `…`. */
export function streamLine(n: number, who: string, text: string, done: boolean): string {
  return `(${n}) ${who} ${printable(text)}${done ? '' : ' …'}`;
}

export function reactionLine(
  who: string,
  emoji: string,
  removed: boolean,
  ref: MessageRef | undefined,
): string {
  return removed
    ? `${who} took back ${printable(emoji)} on ${target(ref)}`
    : `${who} reacted ${printable(emoji)} to ${target(ref)}`;
}

/** An edit: the new text, and the original it replaces. */
export function editLine(who: string, text: string, ref: MessageRef | undefined): string {
  return ref
    ? `(${ref.n}) ${who} edited: ${printable(text)} (was ${snippet(ref.text)})`
    : `${who} edited a message not shown here: ${printable(text)}`;
}

export function deleteLine(who: string, ref: MessageRef | undefined): string {
  return `${who} deleted ${target(ref)}`;
}

/** A task's state: `(6) [bbbbbbbb] task working 40%: crunching`; a cancel hint while it runs. */
export function taskLine(n: number, who: string, t: TaskContent, first: boolean): string {
  const pct = t.progress === undefined ? '' : ` ${Math.round(t.progress * 100)}%`;
  const text = t.content.length > 0 ? `: ${printable(t.content)}` : '';
  const running = t.state === 'submitted' || t.state === 'working' || t.state === 'input-required';
  const hint = first && running ? `  (/cancel ${n} cancels it)` : '';
  return `(${n}) ${who} task ${t.state}${pct}${text}${hint}`;
}

export function taskCancelLine(who: string, ref: MessageRef | undefined): string {
  return `${who} asked to cancel task ${target(ref)}`;
}

/** An actions message: the prompt, its numbered choices and how to answer. */
export function actionsLines(
  n: number,
  who: string,
  prompt: string,
  actions: readonly ContentAction[],
): string[] {
  return [
    `(${n}) ${who} ${printable(prompt)}`,
    ...actions.map((a, i) => `    ${i + 1}. ${printable(a.label)}`),
    `    answer with /choose <number> (or /choose ${n} <number> later)`,
  ];
}

/** Someone's choice among the buttons of an actions message. */
export function actionLine(who: string, actionId: string, ref: MessageRef | undefined): string {
  const label = ref?.actions?.find((a) => a.id === actionId)?.label ?? actionId;
  return `${who} chose "${printable(label)}" on ${target(ref)}`;
}

const UNITS = ['bytes', 'KiB', 'MiB', 'GiB'];

/** 1536 → "1.5 KiB". */
export function sizeText(bytes: number): string {
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u += 1;
  }
  return u === 0 ? `${v} bytes` : `${v.toFixed(1)} ${UNITS[u]}`;
}

/** A file someone sent: its name, size and type (saving it is /attach's business, cli/chat/attachments). */
export function attachmentLine(n: number, who: string, a: AttachmentContent): string {
  return `(${n}) ${who} attachment ${printable(a.name)} (${sizeText(a.size)}, ${printable(a.mime)})`;
}

/** `/profile`: what a user's signed bundle says about it. */
export function profileLines(
  userId: string,
  p: {
    displayName?: string;
    profile?: { bot: boolean; description?: string; commands: readonly ProfileCommand[] };
  },
): string[] {
  const name = p.displayName === undefined ? '' : ` "${printable(p.displayName)}"`;
  if (!p.profile) return [`${userId}${name} publishes no profile`];
  const pr = p.profile;
  const lines = [`${userId}${name}: ${pr.bot ? 'a bot' : 'not a bot'} (signed profile)`];
  if (pr.description !== undefined) lines.push(`  ${printable(pr.description)}`);
  if (pr.commands.length === 0) lines.push('  no commands');
  for (const c of pr.commands) {
    const args = c.args === undefined ? '' : ` ${printable(c.args)}`;
    const about = c.description === undefined ? '' : `  ${printable(c.description)}`;
    lines.push(`  /${printable(c.name)}${args}${about}`);
  }
  return lines;
}
