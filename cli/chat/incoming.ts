/**
 * Shows what arrives, for every PROTOCOL.md §8 content type: numbered lines for messages, streams
 * put together (on a terminal one line rewritten as parts come; on a pipe only the final text),
 * typing (on a terminal in the prompt; on a pipe one line when someone starts), reactions, edits
 * and deletes naming the message they are about, task states, actions as numbered choices, and
 * attachments as a line. A type the chat does not know is shown as its text.
 */
import { isKnownContent, type KnownContent, type ReceivedMessage } from '../../framework/relay/index.js';
import {
  actionLine,
  actionsLines,
  attachmentLine,
  deleteLine,
  editLine,
  reactionLine,
  senderTag,
  streamLine,
  taskCancelLine,
  taskLine,
  textLine,
  typingLine,
} from './content-lines.js';
import type { Conversation } from './format.js';
import { MessageRefs } from './refs.js';
import { StreamAssembler } from './streams.js';
import { TypingTracker } from './typing.js';

/** Where the chat prints. */
export interface ChatOutput {
  print(line: string): void;
  /**
   * A terminal: rewrites the line printed last under `key` in place when nothing was printed since,
   * else prints it as a new line. Absent on a pipe, where streams print only their final text.
   */
  live?: (key: string, line: string) => void;
}

interface Seen {
  conversation: Conversation;
  from: string;
  who: string;
}

export class IncomingView {
  readonly refs = new MessageRefs();
  readonly typing: TypingTracker;
  private readonly streams = new StreamAssembler();

  constructor(
    private readonly out: ChatOutput,
    private readonly label: (groupId: string) => string,
    typingChanged: () => void = () => undefined,
  ) {
    this.typing = new TypingTracker(typingChanged);
  }

  show(m: ReceivedMessage): void {
    const group = m.conversation.kind === 'group';
    const conversation: Conversation = group
      ? { kind: 'group', id: m.conversation.groupId }
      : { kind: 'direct', id: m.from };
    const seen: Seen = {
      conversation,
      from: m.from,
      who: senderTag(m.from, group ? this.label(conversation.id) : undefined),
    };
    const c = m.content;
    if (c.type !== 'typing') this.typing.clear(conversation, m.from);
    if (!isKnownContent(c)) {
      this.text(seen, c.content, c.id);
      return;
    }
    this.known(seen, c);
  }

  /** Closing: on a pipe, the streams that never ended are printed as far as they came. */
  flush(): void {
    for (const s of this.streams.unfinished()) {
      if (this.out.live) continue;
      const ref = this.refs.find(s.conversation, s.from, s.id);
      const who = senderTag(
        s.from,
        s.conversation.kind === 'group' ? this.label(s.conversation.id) : undefined,
      );
      this.out.print(`${textLine(ref?.n ?? 0, who, s.text)} (stream unfinished)`);
    }
    this.typing.stop();
  }

  private known(s: Seen, c: KnownContent): void {
    const { conversation, from, who } = s;
    switch (c.type) {
      case 'text':
        return this.text(s, c.content, c.id);
      case 'typing':
        if (c.state === 'stop') this.typing.clear(conversation, from);
        else if (this.typing.start(conversation, from) && !this.out.live) this.out.print(typingLine(who));
        return;
      case 'stream':
        return this.streamPart(s, c);
      case 'reaction':
        this.out.print(
          reactionLine(who, c.content, c.remove === true, this.refs.target(conversation, from, c.replyTo)),
        );
        return;
      case 'edit': {
        const ref = this.refs.find(conversation, from, c.replyTo);
        this.out.print(editLine(who, c.content, ref));
        if (ref) ref.text = c.content;
        return;
      }
      case 'delete': {
        const ref = this.refs.find(conversation, from, c.replyTo);
        this.out.print(deleteLine(who, ref));
        if (ref) ref.deleted = true;
        return;
      }
      case 'task': {
        const known = this.refs.find(conversation, from, c.id);
        const ref = known ?? this.refs.add({ conversation, from, id: c.id, text: c.content });
        ref.task = c.state;
        if (c.content.length > 0) ref.text = c.content;
        this.out.print(taskLine(ref.n, who, c, known === undefined));
        return;
      }
      case 'task-cancel':
        this.out.print(taskCancelLine(who, this.refs.target(conversation, from, c.replyTo)));
        return;
      case 'actions': {
        const ref = this.refs.add({
          conversation,
          from,
          ...(c.id !== undefined ? { id: c.id } : {}),
          text: c.content,
          actions: c.actions,
        });
        for (const line of actionsLines(ref.n, who, c.content, c.actions)) this.out.print(line);
        return;
      }
      case 'action':
        this.out.print(actionLine(who, c.content, this.refs.target(conversation, from, c.replyTo)));
        return;
      case 'attachment': {
        const ref = this.refs.add({
          conversation,
          from,
          ...(c.id !== undefined ? { id: c.id } : {}),
          text: c.name,
        });
        this.out.print(attachmentLine(ref.n, who, c));
        return;
      }
    }
  }

  /** A message; with the id of a stream, the final text that supersedes its parts. */
  private text(s: Seen, text: string, id: string | undefined): void {
    const known = id === undefined ? undefined : this.refs.find(s.conversation, s.from, id);
    if (id !== undefined) this.streams.end(s.conversation, s.from, id);
    // The stream's last part said `done` and this final text repeats it: shown already.
    if (known?.stream === 'done' && known.text === text) return;
    const ref =
      known ??
      this.refs.add({
        conversation: s.conversation,
        from: s.from,
        ...(id !== undefined ? { id } : {}),
        text,
      });
    ref.text = text;
    if (known?.stream !== undefined && this.out.live) {
      ref.stream = 'done';
      this.out.live(this.streamKey(s, id!), streamLine(ref.n, s.who, text, true));
      return;
    }
    if (known?.stream !== undefined) ref.stream = 'done';
    this.out.print(textLine(ref.n, s.who, text));
  }

  private streamPart(s: Seen, c: Extract<KnownContent, { type: 'stream' }>): void {
    const open = this.streams.part(s.conversation, s.from, c);
    if (!open) return;
    const ref = this.refs.add({ conversation: s.conversation, from: s.from, id: c.id, text: open.text });
    ref.text = open.text;
    ref.stream = open.done ? 'done' : 'open';
    if (this.out.live) this.out.live(this.streamKey(s, c.id), streamLine(ref.n, s.who, open.text, open.done));
    else if (open.done) this.out.print(textLine(ref.n, s.who, open.text));
  }

  private streamKey(s: Seen, id: string): string {
    return `${s.conversation.kind}:${s.conversation.id}|${s.from}|${id}`;
  }
}
