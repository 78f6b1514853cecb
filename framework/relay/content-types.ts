/**
 * The application content types of PROTOCOL.md §8 as one TypeScript union, with the bounds §8 gives.
 *
 * Every member carries `content: string`, the text a receiver that does not know the type shows
 * ("show content as text"). Types whose wire form may omit `content` (delete, typing, task-cancel,
 * attachment) decode with `content: ''` and the encoder omits an empty one again, so reading
 * `.content` is always safe and never shows anything for them. A type we do not know decodes as
 * UnknownContent, which still needs a string `content` on the wire.
 */

/** Longest `id`, `reply_to` and action id, in characters (§8). */
export const MAX_CONTENT_ID_LENGTH = 128;
/** Longest `type`, in characters (§8). */
export const MAX_CONTENT_TYPE_LENGTH = 64;
/** Longest reaction, in UTF-8 bytes (§8). */
export const MAX_REACTION_BYTES = 32;
/** Most buttons one `actions` message offers (§8). */
export const MAX_ACTIONS = 10;
/** Largest file an `attachment` carries inline in `data`, in bytes before base64 (§8). */
export const MAX_INLINE_ATTACHMENT_BYTES = 64 * 1024;
/** AES-256-GCM key of an attachment at a URL, in bytes (§8). */
export const ATTACHMENT_KEY_LENGTH = 32;
/** AES-256-GCM nonce of an attachment at a URL, in bytes (§8). */
export const ATTACHMENT_NONCE_LENGTH = 12;

/** The `state` of a `typing` message. */
export const TYPING_STATES = ['start', 'stop'] as const;
/** One of TYPING_STATES. */
export type TypingState = (typeof TYPING_STATES)[number];

/** The `state` of a `task` message; the last one received wins. */
export const TASK_STATES = [
  'submitted',
  'working',
  'input-required',
  'completed',
  'failed',
  'canceled',
] as const;
/** One of TASK_STATES. */
export type TaskState = (typeof TASK_STATES)[number];

/** Every `type` this implementation reads with its own fields (§8's table plus the two answers). */
export const KNOWN_CONTENT_TYPES = [
  'text',
  'reaction',
  'edit',
  'delete',
  'typing',
  'stream',
  'task',
  'task-cancel',
  'actions',
  'action',
  'attachment',
] as const;
/** One of KNOWN_CONTENT_TYPES. */
export type KnownContentType = (typeof KNOWN_CONTENT_TYPES)[number];

/** A message (the default type). */
export interface TextContent {
  type: 'text';
  content: string;
  id?: string;
  replyTo?: string;
}

/** Adds (or with `remove`, removes) this sender's reaction to `replyTo`. */
export interface ReactionContent {
  type: 'reaction';
  /** An emoji or a word: 1..32 UTF-8 bytes. */
  content: string;
  replyTo: string;
  remove?: boolean;
  id?: string;
}

/** Replaces the text of `replyTo`, an earlier message of the same sender. */
export interface EditContent {
  type: 'edit';
  content: string;
  replyTo: string;
  id?: string;
}

/** Retracts `replyTo`, an earlier message of the same sender; `content` ('' when absent) is for old clients. */
export interface DeleteContent {
  type: 'delete';
  content: string;
  replyTo: string;
  id?: string;
}

/** Ephemeral: the sender is typing (`start`, lapses after 10 s) or stopped; never stored by receivers. */
export interface TypingContent {
  type: 'typing';
  state: TypingState;
  /** '' when absent on the wire. */
  content: string;
  id?: string;
  replyTo?: string;
}

/** One part of reply `id` written while it is produced; parts are shown in `seq` order. */
export interface StreamContent {
  type: 'stream';
  /** The reply being produced; a final `text` with this id supersedes the parts. */
  id: string;
  /** 0, 1, 2, … */
  seq: number;
  /** The text this part adds. */
  content: string;
  done?: boolean;
  replyTo?: string;
}

/** The state of long-running work `id`, requested by `replyTo`; `completed` carries the result. */
export interface TaskContent {
  type: 'task';
  id: string;
  replyTo: string;
  state: TaskState;
  /** Status or result. */
  content: string;
  /** 0..1. */
  progress?: number;
}

/** The requester cancels task `replyTo`. */
export interface TaskCancelContent {
  type: 'task-cancel';
  replyTo: string;
  /** '' when absent on the wire. */
  content: string;
  id?: string;
}

/** One button of an `actions` message. */
export interface ContentAction {
  /** What the choice sends back as its `content`; 1..128 characters, unique within the message. */
  id: string;
  label: string;
}

/** A prompt (`content`, shown as is by clients without buttons) with 1..10 buttons. */
export interface ActionsContent {
  type: 'actions';
  content: string;
  actions: readonly ContentAction[];
  id?: string;
  replyTo?: string;
}

/** A choice: `content` is the action id chosen from the `actions` message `replyTo`. */
export interface ActionContent {
  type: 'action';
  content: string;
  replyTo: string;
  id?: string;
}

/** The file bytes of an attachment: inline (≤ 64 KiB), or AES-256-GCM-encrypted at a URL. */
export type AttachmentSource =
  { kind: 'inline'; data: Uint8Array } | { kind: 'url'; url: string; key: Uint8Array; nonce: Uint8Array };

/** A file. The receiver checks `size` and `sha256` against the bytes before use. */
export interface AttachmentContent {
  type: 'attachment';
  name: string;
  mime: string;
  /** Of the file, in bytes. */
  size: number;
  /** Lowercase hex SHA-256 of the file. */
  sha256: string;
  source: AttachmentSource;
  /** '' when absent on the wire; a short description for clients that do not know attachments. */
  content: string;
  id?: string;
  replyTo?: string;
}

/** A `type` we do not know: shown as its `content`, as §8 asks. */
export interface UnknownContent {
  type: string;
  content: string;
  id?: string;
  replyTo?: string;
}

/** A §8 content type this implementation reads with its own fields; switch on `type`. */
export type KnownContent =
  | TextContent
  | ReactionContent
  | EditContent
  | DeleteContent
  | TypingContent
  | StreamContent
  | TaskContent
  | TaskCancelContent
  | ActionsContent
  | ActionContent
  | AttachmentContent;

/**
 * A chat message's application content (PROTOCOL.md §8): a known type with its fields, or an unknown
 * one shown as text. Narrow with isKnownContent() before switching on `type`.
 */
export type AppContent = KnownContent | UnknownContent;

/** Whether `type` is one of KNOWN_CONTENT_TYPES. */
export function isKnownContentType(type: string): type is KnownContentType {
  return (KNOWN_CONTENT_TYPES as readonly string[]).includes(type);
}

/** Narrows content to the known union, so a `switch (c.type)` sees each type's fields. */
export function isKnownContent(c: AppContent): c is KnownContent {
  return isKnownContentType(c.type);
}

/** Ephemeral content (typing) is shown and forgotten: receivers never store it (§8). */
export function isEphemeralContent(c: AppContent): boolean {
  return c.type === 'typing';
}

/**
 * The message id whose author must be this content's sender, or undefined: an edit's or delete's
 * `replyTo`, a stream part's `id` (§8: from anyone else they are dropped as `content`).
 */
export function senderBoundTarget(c: AppContent): string | undefined {
  if (c.type === 'edit' || c.type === 'delete') return c.replyTo;
  if (c.type === 'stream') return c.id;
  return undefined;
}
