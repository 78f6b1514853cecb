/**
 * Server-sent events (the WHATWG event-stream format) decoded from text that arrives in pieces cut
 * anywhere: inside a line, between a CR and its LF, or inside a multi-byte character (the byte
 * decoding is the caller's TextDecoder with `stream: true`). Only `data` matters for chat
 * completions; `event`, `id`, `retry` and comments are skipped.
 */

/** One dispatched event: its data lines joined with '\n', and its `event` name if it had one. */
export interface SseEvent {
  readonly event: string | undefined;
  readonly data: string;
}

/** Decodes an event stream piece by piece; feed() returns the events the piece completed. */
export class SseDecoder {
  private buffer = '';
  /** The last piece ended in CR: a LF starting the next one belongs to that line end. */
  private pendingCr = false;
  private data: string[] = [];
  private event: string | undefined;

  /** Bytes held back in an unfinished line, so callers can bound a stream that never ends a line. */
  get pendingLength(): number {
    return this.buffer.length;
  }

  feed(piece: string): SseEvent[] {
    if (piece === '') return [];
    let text = piece;
    if (this.pendingCr && text.startsWith('\n')) text = text.slice(1);
    this.pendingCr = false;
    this.buffer += text;
    const events: SseEvent[] = [];
    for (;;) {
      const end = this.buffer.search(/[\r\n]/);
      if (end < 0) break;
      const line = this.buffer.slice(0, end);
      let next = end + 1;
      if (this.buffer[end] === '\r') {
        if (end + 1 === this.buffer.length) this.pendingCr = true;
        else if (this.buffer[end + 1] === '\n') next = end + 2;
      }
      this.buffer = this.buffer.slice(next);
      const event = this.line(line);
      if (event !== undefined) events.push(event);
    }
    return events;
  }

  /**
   * The event left when the stream ends without its blank line. The format says to discard it, but
   * some servers omit the last blank line, so a complete `data:` line is still taken.
   */
  end(): SseEvent[] {
    const rest = this.buffer;
    this.buffer = '';
    const events: SseEvent[] = [];
    if (rest !== '') {
      const event = this.line(rest);
      if (event !== undefined) events.push(event);
    }
    const last = this.line('');
    if (last !== undefined) events.push(last);
    return events;
  }

  private line(line: string): SseEvent | undefined {
    if (line === '') {
      if (this.data.length === 0) {
        this.event = undefined;
        return undefined;
      }
      const dispatched = { event: this.event, data: this.data.join('\n') };
      this.data = [];
      this.event = undefined;
      return dispatched;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    return undefined;
  }
}
