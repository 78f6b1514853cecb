/**
 * Per-conversation session data, kept as JSON. Loaded only when a handler asks for it and saved by
 * the runtime after a handler that succeeded, and only when the JSON changed.
 *
 * Where it is kept: a runtime attached to a RelayClient keeps it in the message's transaction
 * (data.ts, key `session:<bot>:<conversation id>`), so the session, the message and its replies
 * commit together: a crash loses all three or keeps all three, and a redelivered message runs
 * against the session as it was before it. An explicit `session.store` (MemorySessionStore in unit
 * tests) replaces that; such a store is written before the commit and is not transactional.
 */
import { ConfigError, HandlerError, StorageError } from '../relay/errors.js';

/** Where sessions are loaded from and saved to (per conversation id). */
export interface SessionStore {
  /** undefined when the conversation has no session yet. */
  load(conversationId: string): Promise<unknown>;
  save(conversationId: string, value: unknown): Promise<void>;
}

/** A conversation's session (ctx.session): per-conversation state, saved with the message. */
export interface Session<S> {
  /** Loads on first use; later calls in the same message return the same mutable object. */
  get(): Promise<S>;
  /** Replaces the whole value without loading it first. */
  set(value: S): void;
}

/** For tests and single-process development: values are kept as JSON strings, as a database would. */
export class MemorySessionStore implements SessionStore {
  private readonly rows = new Map<string, string>();

  load(conversationId: string): Promise<unknown> {
    const row = this.rows.get(conversationId);
    return Promise.resolve(row === undefined ? undefined : JSON.parse(row));
  }

  save(conversationId: string, value: unknown): Promise<void> {
    this.rows.set(conversationId, JSON.stringify(value));
    return Promise.resolve();
  }
}

/** Session settings: the initial value, and the store when the runtime is not attached. */
export interface SessionOptions<S = unknown> {
  /**
   * Overrides the transactional store of an attached runtime; required only when handle() is
   * called without a transaction.
   */
  store?: SessionStore;
  /** The value of a conversation without a session; defaults to `{}`. */
  initial?: () => S;
}

export class LazySession<S> implements Session<S> {
  private value: { current: S } | undefined;
  private loading: Promise<S> | undefined;
  /** JSON of what was loaded, to skip saving an unchanged session. */
  private loadedJson: string | undefined;

  constructor(
    private readonly conversationId: string,
    private readonly store: SessionStore | undefined,
    private readonly initial: (() => S) | undefined,
  ) {}

  get(): Promise<S> {
    if (this.value) return Promise.resolve(this.value.current);
    this.loading ??= this.load();
    return this.loading;
  }

  set(value: S): void {
    this.value = { current: value };
  }

  /** Called by the runtime after the handler succeeded. */
  async save(): Promise<void> {
    if (!this.value || !this.store) return;
    let json: string;
    try {
      json = JSON.stringify(this.value.current) ?? 'null';
    } catch (cause) {
      throw new HandlerError('ctx.session holds a value that is not JSON (a cycle or a BigInt)', { cause });
    }
    if (json === this.loadedJson) return;
    try {
      await this.store.save(this.conversationId, JSON.parse(json));
    } catch (cause) {
      throw new StorageError(`could not save the session of ${this.conversationId}`, { cause });
    }
  }

  private async load(): Promise<S> {
    const store = this.store;
    if (!store) {
      throw new ConfigError(
        'ctx.session needs a session store: attach the runtime to a RelayClient (sessions then commit with the message), or pass { session: { store } } to BotRuntime (MemorySessionStore for tests)',
      );
    }
    let raw: unknown;
    try {
      raw = await store.load(this.conversationId);
    } catch (cause) {
      throw new StorageError(`could not load the session of ${this.conversationId}`, { cause });
    }
    const initial = raw === undefined;
    const loaded = (initial ? (this.initial?.() ?? {}) : raw) as S;
    this.loadedJson = initial ? undefined : JSON.stringify(loaded);
    // set() may have run while the store was answering; that value wins.
    this.value ??= { current: loaded };
    return this.value.current;
  }
}
