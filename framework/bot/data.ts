/**
 * Per-conversation data inside the message transaction. RelayClient hands its message handler a
 * HandlerTransaction (`loadData`/`saveData` of JSON strings keyed by a conversation id); whatever
 * is saved there commits together with the message and its replies. The bot layer namespaces its
 * keys by bot name so several bots can share one store:
 *
 *   session:<bot>:<conversation id>     ctx.session
 *   ratelimit:<bot>:<sender>            plugins/rate-limit
 *   jobs:<bot>:<due ms, 15 digits>:<id> scheduled messages (scheduler.ts)
 *
 * Writing JSON `null` (TOMBSTONE, the store's CONVERSATION_DATA_DELETED) deletes a key when the
 * message commits; until then (later reads in the same transaction, MemoryDataStore) the string
 * 'null' may still be read, so every reader here treats it as absent.
 */
import type { HandlerTransaction } from '../relay/client.js';
import { ConfigError, HandlerError } from '../relay/errors.js';
import { CONVERSATION_DATA_DELETED } from '../relay/store.js';
import type { SessionStore } from './session.js';

/** The transaction a handler runs in; the same shape RelayClient passes to its message handler. */
export type BotTransaction = HandlerTransaction;

/** The JSON written for a removed key (see the module comment). */
export const TOMBSTONE = CONVERSATION_DATA_DELETED;

/** The conversation-data key under which a bot's session for a conversation is stored. */
export const sessionKey = (bot: string, conversationId: string): string => `session:${bot}:${conversationId}`;

/** Parses stored JSON; undefined for a missing key or a tombstone. */
export function parseStored(json: string | undefined): unknown {
  if (json === undefined || json === TOMBSTONE) return undefined;
  return JSON.parse(json) as unknown;
}

/**
 * A stored row's JSON as an object, or undefined for a tombstone, a non-object or JSON this
 * version cannot read: rows written by other versions or replicas are skipped, never thrown on.
 */
export function storedObject(json: string): Record<string, unknown> | undefined {
  let v: unknown;
  try {
    v = parseStored(json);
  } catch {
    return undefined;
  }
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
}

/** Whether a stored `to` names a direct peer or a group by id, as PostTarget does. */
export function isStoredTarget(to: unknown): to is { kind: 'direct' | 'group'; id: string } {
  if (typeof to !== 'object' || to === null) return false;
  const t = to as { kind?: unknown; id?: unknown };
  return (t.kind === 'direct' || t.kind === 'group') && typeof t.id === 'string';
}

/** A SessionStore for one message: reads and writes go through that message's transaction. */
export function transactionalSessionStore(tx: BotTransaction, bot: string): SessionStore {
  return {
    load: async (conversationId) => parseStored(await tx.loadData(sessionKey(bot, conversationId))),
    save: (conversationId, value) => {
      tx.saveData(sessionKey(bot, conversationId), JSON.stringify(value) ?? TOMBSTONE);
      return Promise.resolve();
    },
  };
}

/**
 * Stands in for ctx.tx when the runtime is called without a transaction (unit tests calling
 * handle() directly): using it is a configuration error, not silent data loss.
 */
export const noTransaction: BotTransaction = {
  loadData: () =>
    Promise.reject(
      new ConfigError(
        'this message has no transaction: attach the runtime to a RelayClient, or pass one to handle() (MemoryDataStore in tests)',
      ),
    ),
  saveData: () => {
    throw new ConfigError(
      'this message has no transaction: attach the runtime to a RelayClient, or pass one to handle() (MemoryDataStore in tests)',
    );
  },
};

/**
 * Wraps a transaction so that writes made after the handler finished (or timed out) are refused:
 * RelayClient builds its commit right after the handler returns, so a late write would otherwise
 * land in it or vanish depending on timing. Reads are refused once the runtime stopped
 * (`isStopped`): a handler abandoned at its time limit that outlives stop() would otherwise read
 * a store that may be closed by then.
 */
export function gatedTransaction(
  tx: BotTransaction,
  isOpen: () => boolean,
  isStopped: () => boolean = () => false,
): BotTransaction {
  return {
    loadData: (key) =>
      isStopped()
        ? Promise.reject(new HandlerError('ctx.tx.loadData() after the runtime stopped'))
        : tx.loadData(key),
    saveData: (key, json) => {
      if (!isOpen()) throw new HandlerError('saveData() after the handler finished or timed out');
      tx.saveData(key, json);
    },
  };
}

/**
 * In-memory conversation data for unit tests: `transaction()` gives a BotTransaction whose writes
 * apply at once (there is no message to commit with), `list(prefix)` reads like
 * RelayStore.listConversationData.
 */
export class MemoryDataStore {
  private readonly rows = new Map<string, string>();

  transaction(): BotTransaction {
    return {
      loadData: (key) => Promise.resolve(this.rows.get(key)),
      saveData: (key, json) => void this.rows.set(key, json),
    };
  }

  get(key: string): string | undefined {
    return this.rows.get(key);
  }

  listConversationData(prefix: string): Promise<Array<{ conversationId: string; json: string }>> {
    return Promise.resolve(
      [...this.rows.entries()]
        .filter(([k]) => k.startsWith(prefix))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([conversationId, json]) => ({ conversationId, json })),
    );
  }
}
