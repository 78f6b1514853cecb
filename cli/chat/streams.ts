/**
 * Replies written while they are produced (PROTOCOL.md §8 `stream`): parts are put together in
 * `seq` order (a part that arrives early waits for the ones before it); a part with `done`, or the
 * final `text` with the stream's id, ends the stream. Bounded: a sender cannot make the chat hold
 * unbounded text or parts.
 */
import type { StreamContent } from '../../framework/relay/index.js';
import type { Conversation } from './format.js';

/** Open streams the chat follows at once; the oldest is dropped beyond this. */
export const MAX_OPEN_STREAMS = 64;
/** Parts waiting for an earlier `seq`, per stream; more are ignored. */
export const MAX_WAITING_PARTS = 256;
/** Text kept per stream, in characters; what comes after is cut (the final text still shows whole). */
export const MAX_STREAM_CHARS = 64 * 1024;

/** A stream as far as it has arrived in order. */
export interface OpenStream {
  conversation: Conversation;
  from: string;
  id: string;
  text: string;
  /** A part with `done` came: the text is final. */
  done: boolean;
}

interface State extends OpenStream {
  next: number;
  waiting: Map<number, StreamContent>;
}

const key = (c: Conversation, from: string, id: string): string => `${c.kind}:${c.id}|${from}|${id}`;

/** Ended streams remembered so a late part does not open them again. */
const MAX_ENDED = 1024;

export class StreamAssembler {
  private readonly open = new Map<string, State>();
  private readonly ended = new Set<string>();

  /**
   * Adds a part; returns the stream when its in-order text changed (undefined for a duplicate or a
   * part still waiting for an earlier one).
   */
  part(conversation: Conversation, from: string, c: StreamContent): OpenStream | undefined {
    const k = key(conversation, from, c.id);
    if (this.ended.has(k)) return undefined;
    let s = this.open.get(k);
    if (!s) {
      s = { conversation, from, id: c.id, text: '', done: false, next: 0, waiting: new Map() };
      this.open.set(k, s);
      this.evict();
    }
    if (c.seq < s.next || s.waiting.has(c.seq)) return undefined;
    if (s.waiting.size >= MAX_WAITING_PARTS) return undefined;
    s.waiting.set(c.seq, c);
    let changed = false;
    for (let p = s.waiting.get(s.next); p; p = s.waiting.get(s.next)) {
      s.waiting.delete(s.next);
      s.next += 1;
      if (s.text.length < MAX_STREAM_CHARS) s.text = (s.text + p.content).slice(0, MAX_STREAM_CHARS);
      if (p.done) s.done = true;
      changed = true;
    }
    if (!changed) return undefined;
    if (s.done) this.markEnded(k);
    return s;
  }

  /** Ends a stream (its final text arrived); returns what it was, if it was open. */
  end(conversation: Conversation, from: string, id: string): OpenStream | undefined {
    const k = key(conversation, from, id);
    const s = this.open.get(k);
    this.markEnded(k);
    return s;
  }

  /** The streams that never ended (the chat is closing). */
  unfinished(): OpenStream[] {
    const list = [...this.open.values()];
    this.open.clear();
    return list;
  }

  private markEnded(k: string): void {
    this.open.delete(k);
    this.ended.add(k);
    if (this.ended.size > MAX_ENDED) {
      const [oldest] = this.ended;
      if (oldest !== undefined) this.ended.delete(oldest);
    }
  }

  private evict(): void {
    while (this.open.size > MAX_OPEN_STREAMS) {
      const [oldest] = this.open.keys();
      if (oldest === undefined) return;
      this.open.delete(oldest);
    }
  }
}
