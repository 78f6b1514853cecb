/**
 * A handler run that goes on after its message committed.
 *
 * Why: typing indicators and stream parts must go out WHILE the handler runs, but the incoming
 * message's conversation lane is busy until the handler returns (its replies commit with it), and
 * every message advances the MLS ratchet, whose generations must never be reused, not even after a
 * crash. Sending "beside" the lane would need generations reserved in advance; instead the first
 * ctx.typing() / ctx.stream() (or automatic typing) commits the incoming message early: the session
 * so far, the replies so far and a durable marker row (open-replies.ts) commit with it, the client's
 * handler call returns, and the handler continues detached from the lane. Everything it sends from
 * then on (typing, stream parts, replies, the error reply) is an ordinary send through the client's
 * commit-then-publish path, one at a time and in order, after that commit. When the handler ends,
 * a closing message (`typing stop`, or the final text of a stream cut short) commits the marker's
 * deletion and the session's later changes. A crash in between leaves the marker, and the next start
 * ends the reply with INTERRUPTED_REPLY: a reply always ends in a final message or a clear failure.
 *
 * The price: once detached, later ctx.tx writes and the session commit with the closing message
 * (last writer wins against another message of the same conversation handled meanwhile), group
 * changes are refused, and a crash loses the rest of the run instead of replaying the message.
 */
import type { Logger } from 'pino';
import type { ContentInput } from '../relay/content.js';
import { ArgumentError, ConfigError, HandlerError } from '../relay/errors.js';
import { streamFinal, streamPart, typingContent } from './agent-content.js';
import { TOMBSTONE, type BotTransaction } from './data.js';
import {
  encodeOpenReply,
  openReplyKey,
  type MarkerOwner,
  type OpenReply,
  type PostFn,
  type PostTarget,
} from './open-replies.js';
import type { LazySession } from './session.js';
import { StreamPacer, type PacerTimers } from './stream-pacer.js';
import type { TypingLimiter } from './typing.js';

/** Appended to a streamed reply whose parts failed (its iterable threw or the handler was stopped). */
export const STREAM_FAILED_NOTE = '(this reply failed before it was finished)';

type DataRow = { conversationId: string; json: string };

/**
 * The transaction of a run that may detach: before, writes go to the message's transaction; after,
 * they wait for the run's closing message, which commits them.
 */
export class DetachableTransaction implements BotTransaction {
  private readonly pending = new Map<string, string>();
  private detached = false;

  constructor(private readonly inner: BotTransaction) {}

  async loadData(key: string): Promise<string | undefined> {
    return this.pending.get(key) ?? (await this.inner.loadData(key));
  }

  saveData(key: string, json: string): void {
    if (this.detached) this.pending.set(key, json);
    else this.inner.saveData(key, json);
  }

  detach(): void {
    this.detached = true;
  }

  /** The writes made after detach(), taken (they go out with one message). */
  take(): DataRow[] {
    const rows = [...this.pending].map(([conversationId, json]) => ({ conversationId, json }));
    this.pending.clear();
    return rows;
  }
}

/** What a DetachedRun needs: where it sends, its marker row, and the run it continues. */
export interface DetachedRunInit {
  readonly bot: string;
  readonly runId: string;
  /** Written into the marker, so cleanup tells a live replica's run from a dead one's. */
  readonly owner: MarkerOwner;
  readonly to: PostTarget;
  /** The incoming message's id: what replies, typing and streams answer. */
  readonly answering: string | undefined;
  readonly post: PostFn | undefined;
  readonly tx: DetachableTransaction;
  readonly session: LazySession<unknown>;
  /** Resolves once the client committed the incoming message (called at detach, before release). */
  readonly committed: () => Promise<void>;
  readonly newId: () => string;
  readonly typing: TypingLimiter;
  readonly timers: PacerTimers;
  /** Renews the handler's time limit (stream parts keep a streaming handler alive). */
  readonly renew: () => void;
  readonly log: Logger;
}

interface OpenStream {
  readonly id: string;
  readonly replyTo: string | undefined;
  text: string;
  /** A part went out, so the marker names this stream. */
  marked: boolean;
}

/**
 * The rest of a handler run after ctx.typing() or ctx.stream() detached it from its message's
 * transaction: later messages go out one at a time through the client, under a durable marker.
 */
export class DetachedRun {
  private state: 'attached' | 'detached' | 'closed' = 'attached';
  private detaching: Promise<void> | undefined;
  private releaseLane!: () => void;
  /** Resolves when the run detached: the client's handler call may return. */
  readonly released = new Promise<void>((resolve) => (this.releaseLane = resolve));
  private outbound: Promise<unknown> = Promise.resolve();
  /** The commit of the incoming message; every send waits for it and fails with it. */
  private commit: Promise<void> = Promise.resolve();
  private stream: OpenStream | undefined;
  /**
   * The latest reply (or stream final), not yet sent: if the handler ends before the next turn of
   * the event loop, close() sends it with the marker's deletion, in one commit. Sent on its own,
   * a crash between it and the closing message would end an answered run as interrupted too.
   */
  private held: { content: ContentInput; data: DataRow[] } | undefined;

  constructor(private readonly init: DetachedRunInit) {}

  get isDetached(): boolean {
    return this.state !== 'attached';
  }

  /**
   * Commits the incoming message now (with the session, the replies so far and the marker) and
   * resolves once that commit is done; idempotent.
   */
  detach(what: string): Promise<void> {
    if (this.state === 'closed')
      return Promise.reject(new HandlerError(`${what} after the handler finished`));
    this.detaching ??= this.start(what);
    return this.detaching;
  }

  /** Sends after the commit, in call order; `data` commits with the message. */
  send(content: ContentInput, data: DataRow[] = []): Promise<void> {
    this.flushHeld();
    const post = this.requirePost('sending after the handler detached');
    const next = this.outbound.then(() => this.commit).then(() => post(this.init.to, content, data));
    this.outbound = next.catch(() => undefined);
    return next.then(() => undefined);
  }

  /** A reply made after detach(): sent at once (failures are logged; the handler has moved on). */
  reply(content: ContentInput): void {
    if (this.state === 'closed') {
      this.init.log.warn('a reply made after the handler finished was dropped');
      return;
    }
    this.hold(content, []);
  }

  /** ctx.typing(): detaches, then a `typing start` unless one went out in the last 3 s. */
  async typingStart(): Promise<void> {
    await this.detach('typing()');
    if (this.state === 'closed' || !this.init.typing.take(this.init.to.id)) return;
    await this.send(typingContent('start'));
  }

  /** Automatic typing: like typingStart(), but quiet while a stream shows progress anyway. */
  async autoTyping(): Promise<void> {
    if (this.stream || this.state === 'closed') return;
    await this.typingStart();
  }

  /** ctx.stream(): see BotContext.stream. */
  async streamReply(
    parts: AsyncIterable<string>,
    replyTo: string | undefined,
    signal: AbortSignal,
  ): Promise<string> {
    if (
      parts === null ||
      typeof (parts as Partial<AsyncIterable<string>>)[Symbol.asyncIterator] !== 'function'
    ) {
      throw new ArgumentError('stream() needs an async iterable of strings (an async generator, for one)');
    }
    this.requirePost('ctx.stream()');
    await this.detach('stream()');
    if (this.stream)
      throw new HandlerError('one ctx.stream() at a time: await the first before starting another');
    if (this.state === 'closed') throw new HandlerError('stream() after the handler finished');
    const s: OpenStream = {
      id: this.init.newId(),
      replyTo: replyTo ?? this.init.answering,
      text: '',
      marked: false,
    };
    this.stream = s;
    const pacer = new StreamPacer(async (text, seq) => {
      if (this.stream !== s)
        throw new HandlerError('the stream was ended: the handler finished or timed out');
      // The first part names the stream in the marker, so a crash ends this stream, not a new message.
      const data = seq === 0 ? [this.markerRow({ stream: s.id })] : [];
      await this.send(streamPart(s.id, seq, text, s.replyTo), data);
      s.marked ||= seq === 0;
    }, this.init.timers);
    try {
      for await (const part of parts) {
        if (typeof part !== 'string') throw new ArgumentError('stream() parts must be strings');
        if (signal.aborted || this.stream !== s)
          throw new HandlerError('the stream was stopped: the handler timed out');
        s.text += part;
        pacer.add(part);
        this.init.renew();
      }
      await pacer.finish();
    } catch (error) {
      await pacer.finish().catch(() => undefined);
      if (this.stream === s) {
        this.stream = undefined;
        await this.send(streamFinal(s.id, failedText(s.text), s.replyTo), [this.answeredRow()]).catch(
          (err: unknown) => this.init.log.error({ err }, 'could not send the final text of a failed stream'),
        );
      }
      throw error;
    }
    // close() (the time limit) may have ended this stream as failed while its last parts went
    // out: its final text is sent, and a second one would contradict it.
    if (this.stream !== s) throw new HandlerError('the stream was ended: the handler finished or timed out');
    this.stream = undefined;
    this.hold(streamFinal(s.id, s.text, s.replyTo), [this.answeredRow()]);
    return s.id;
  }

  /**
   * The handler is done (or abandoned at its time limit): one closing message commits the marker's
   * deletion and the writes made since the detach, ending an open stream as failed.
   */
  async close(): Promise<void> {
    if (this.state !== 'detached') {
      this.state = 'closed';
      return;
    }
    this.state = 'closed';
    const open = this.stream;
    this.stream = undefined;
    const data = [...this.init.tx.take(), { conversationId: this.key, json: TOMBSTONE }];
    const last = this.held;
    if (open || !last) {
      const closing = open
        ? streamFinal(open.id, failedText(open.text), open.replyTo)
        : typingContent('stop');
      await this.send(closing, data);
      return;
    }
    // The handler's last answer ends the run: it and the marker's deletion commit together.
    this.held = undefined;
    await this.send(last.content, [...last.data, ...data]);
    await this.send(typingContent('stop'));
  }

  /** Keeps `content` back for one turn of the event loop (see `held`); an earlier one goes first. */
  private hold(content: ContentInput, data: DataRow[]): void {
    this.flushHeld();
    this.held = { content, data };
    setImmediate(() => this.flushHeld());
  }

  private flushHeld(): void {
    const h = this.held;
    if (!h) return;
    this.held = undefined;
    void this.send(h.content, h.data).catch((err: unknown) => this.init.log.error({ err }, 'reply failed'));
  }

  private get key(): string {
    return openReplyKey(this.init.bot, this.init.runId);
  }

  /** The marker once a stream's final text went out with it (OpenReply.answered). */
  private answeredRow(): DataRow {
    return this.markerRow({ answered: true });
  }

  private markerRow(extra: Pick<OpenReply, 'stream' | 'answered'>): DataRow {
    const marker: OpenReply = {
      to: this.init.to,
      ...(this.init.answering !== undefined ? { replyTo: this.init.answering } : {}),
      ...extra,
      ...(this.init.owner.owner !== undefined ? { owner: this.init.owner.owner } : {}),
      boot: this.init.owner.boot,
    };
    return { conversationId: this.key, json: encodeOpenReply(marker) };
  }

  private async start(what: string): Promise<void> {
    this.requirePost(`ctx.${what}`);
    // Into the message's own transaction: it commits with the message, or neither does.
    await this.init.session.save();
    const marker = this.markerRow({});
    this.init.tx.saveData(marker.conversationId, marker.json);
    this.init.tx.detach();
    const committed = this.init.committed();
    this.state = 'detached';
    this.init.log.debug({ run: this.init.runId }, 'handler detached: the message commits now');
    this.releaseLane();
    // Sends queue on the conversation's lane anyway; waiting for the commit event also keeps a
    // commit that failed (the message runs again) from being followed by this run's messages.
    this.commit = committed;
    await committed;
  }

  private requirePost(what: string): PostFn {
    if (!this.init.post) {
      throw new ConfigError(
        `${what} needs a client: attach the runtime to a RelayClient (or give HandleDeps.post)`,
      );
    }
    return this.init.post;
  }
}

function failedText(soFar: string): string {
  return soFar === '' ? STREAM_FAILED_NOTE : `${soFar}\n\n${STREAM_FAILED_NOTE}`;
}
