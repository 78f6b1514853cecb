/**
 * Counts the Postgres statements a bench child sends, by kind, from the SQL text each one carries
 * (pg.Client.prototype.query is the one door every TypeORM statement goes through). The kinds are
 * the round trips issue 12 wants cut: the message load, the commit (batched or alone), the outbox
 * delete after PUBACK, the sender-index read, transaction control, and the rest.
 */
import pg from 'pg';

/** The kind of one statement, by its text; `other` for anything not named here. */
export function statementKind(text: string): string {
  if (text.includes('"processed_hit"')) return 'message load';
  if (/^\s*WITH\s+"u\d+"/.test(text)) return 'commit batch';
  if (/^\s*WITH\s+"updated"/.test(text)) return 'commit alone';
  if (text.startsWith('DELETE FROM "outbox"')) return 'outbox delete';
  if (text.includes('FROM "message_senders" WHERE "group_id" = $1 AND "message_id" IN'))
    return 'senders read';
  if (text.includes('"read_i"')) return 'senders read';
  if (/^\s*(BEGIN|START TRANSACTION|COMMIT|ROLLBACK)/i.test(text)) return 'transaction control';
  if (/^\s*SELECT .* FROM "outbox"/s.test(text)) return 'outbox read';
  // Anything else by its verb and first table, so a new kind shows up by name.
  const verb = /^\s*(\w+)/.exec(text)?.[1]?.toUpperCase() ?? '?';
  const table = /(?:FROM|INTO|UPDATE)\s+"(\w+)"/i.exec(text)?.[1] ?? '?';
  return `other ${verb} ${table}`;
}

/** Installs the counter once per process; returns a reader of the counts so far. */
export function countStatements(): () => { queries: number; queryKinds: Record<string, number> } {
  const kinds: Record<string, number> = {};
  let queries = 0;
  const original = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  (pg.Client.prototype as { query: unknown }).query = function (this: pg.Client, ...args: unknown[]) {
    const first = args[0];
    const text = typeof first === 'string' ? first : String((first as { text?: unknown })?.text ?? '');
    const kind = statementKind(text);
    kinds[kind] = (kinds[kind] ?? 0) + 1;
    queries++;
    return original.apply(this, args);
  };
  return () => ({ queries, queryKinds: { ...kinds } });
}
