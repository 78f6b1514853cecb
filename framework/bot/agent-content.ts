/**
 * The §8 content the agent API sends (ctx.react, ctx.edit, ctx.delete, ctx.actions, typing and
 * stream parts), built from what a handler passes and checked up front: a handler's mistake is an
 * ArgumentError naming the fix at the call, not a reply the relay layer refuses after the handler.
 */
import {
  MAX_ACTIONS,
  MAX_CONTENT_ID_LENGTH,
  MAX_REACTION_BYTES,
  type ActionsContent,
  type DeleteContent,
  type EditContent,
  type ReactionContent,
  type StreamContent,
  type TextContent,
  type TypingContent,
  type TypingState,
} from '../relay/content-types.js';
import { ArgumentError } from '../relay/errors.js';

const encoder = new TextEncoder();

/** One button of ctx.actions(). */
export interface ActionButton {
  /** What a choice sends back (1..128 characters, unique within the message). */
  id: string;
  label: string;
}

/** A message id as §8 bounds it: 1..128 characters. */
export function checkMessageId(id: unknown, what: string): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_CONTENT_ID_LENGTH) {
    throw new ArgumentError(
      `${what} needs a message id of 1..${MAX_CONTENT_ID_LENGTH} characters (the id ctx.reply() returned)`,
    );
  }
  return id;
}

export function reactionContent(emoji: unknown, messageId: string): ReactionContent {
  const bytes = typeof emoji === 'string' ? encoder.encode(emoji).length : 0;
  if (typeof emoji !== 'string' || bytes === 0 || bytes > MAX_REACTION_BYTES) {
    throw new ArgumentError(
      `react() needs an emoji or a word of 1..${MAX_REACTION_BYTES} UTF-8 bytes, e.g. ctx.react('👍')`,
    );
  }
  return { type: 'reaction', content: emoji, replyTo: messageId };
}

export function editContent(messageId: unknown, text: unknown): EditContent {
  const replyTo = checkMessageId(messageId, 'edit()');
  if (typeof text !== 'string')
    throw new ArgumentError('edit(messageId, text) needs the new text as a string');
  return { type: 'edit', content: text, replyTo };
}

export function deleteContent(messageId: unknown): DeleteContent {
  return { type: 'delete', content: '', replyTo: checkMessageId(messageId, 'delete()') };
}

export function actionsContent(prompt: unknown, actions: unknown): ActionsContent {
  if (typeof prompt !== 'string' || prompt === '') {
    throw new ArgumentError('actions(prompt, actions) needs a prompt: the text shown above the buttons');
  }
  if (!Array.isArray(actions) || actions.length === 0 || actions.length > MAX_ACTIONS) {
    throw new ArgumentError(`actions() takes 1 to ${MAX_ACTIONS} buttons: [{ id, label }, …]`);
  }
  const seen = new Set<string>();
  const buttons = actions.map((a: unknown, i): ActionButton => {
    const { id, label } = (a ?? {}) as Partial<ActionButton>;
    if (typeof id !== 'string' || id.length === 0 || id.length > MAX_CONTENT_ID_LENGTH) {
      throw new ArgumentError(
        `actions(): button ${i + 1} needs an id of 1..${MAX_CONTENT_ID_LENGTH} characters`,
      );
    }
    if (seen.has(id)) throw new ArgumentError(`actions(): the id "${id}" is used twice; ids must be unique`);
    seen.add(id);
    if (typeof label !== 'string' || label === '') {
      throw new ArgumentError(`actions(): button "${id}" needs a label (the text on the button)`);
    }
    return { id, label };
  });
  return { type: 'actions', content: prompt, actions: buttons };
}

export function typingContent(state: TypingState): TypingContent {
  return { type: 'typing', state, content: '' };
}

export function streamPart(
  id: string,
  seq: number,
  text: string,
  replyTo: string | undefined,
): StreamContent {
  return { type: 'stream', id, seq, content: text, ...(replyTo !== undefined ? { replyTo } : {}) };
}

/** The `text` that ends stream `id` and supersedes its parts. */
export function streamFinal(id: string, text: string, replyTo: string | undefined): TextContent {
  return { type: 'text', id, content: text, ...(replyTo !== undefined ? { replyTo } : {}) };
}
