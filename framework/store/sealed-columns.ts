/**
 * Every column sealed at rest when a state key is set, and the one routine that re-seals them all
 * under another key: used by `keys rotate-state-key` and by the one-time upgrade of databases sealed
 * before the state-key record existed. mapping.ts seals the same columns under the same slots.
 */
import { StorageError } from '../relay/errors.js';
import type { AtRestCipher, SecretSlot } from './crypto-at-rest.js';
import { SLOT_TABLE } from './conversation-rows.js';
import { toBytes, toInt, toParam, type Row } from './mapping.js';
import type { Sql } from './sql.js';

interface SealedColumn {
  column: string;
  /** A text column keeps the sealed bytes as base64. */
  text: boolean;
  /** Sealed already by the releases before the state-key record (the legacy layout). */
  legacy: boolean;
}

interface SealedTable {
  table: string;
  /** The slot's table name when it is not `table` (a conversation kind's, conversation-rows.ts). */
  slotTable?: string;
  /** Which rows of `table` these columns are sealed in (SQL condition). */
  rows?: string;
  /** The primary key: part of every slot, so a sealed value cannot move to another row. */
  key: string;
  columns: SealedColumn[];
}

const bytes = (column: string, legacy = false): SealedColumn => ({ column, text: false, legacy });
const text = (column: string): SealedColumn => ({ column, text: true, legacy: false });

export const SEALED_TABLES: readonly SealedTable[] = [
  { table: 'identities', key: 'id', columns: [bytes('signing_seed', true), bytes('seal_secret', true)] },
  { table: 'key_packages', key: 'ref', columns: [bytes('private_key_package', true)] },
  {
    table: 'conversations',
    slotTable: SLOT_TABLE.direct,
    rows: `"kind" = 'direct'`,
    key: 'group_id',
    columns: [
      bytes('state', true),
      // Whoever holds an inbound access key may skip proof of work (PROTOCOL.md §7).
      bytes('inbound_access_current'),
      bytes('inbound_access_previous'),
      // Texts the peer has not confirmed yet: the conversation's plaintext.
      text('unconfirmed_outgoing'),
    ],
  },
  {
    table: 'conversations',
    slotTable: SLOT_TABLE.group,
    rows: `"kind" = 'group'`,
    key: 'group_id',
    columns: [bytes('state', true), text('meta'), bytes('epoch_state')],
  },
  { table: 'conversation_data', key: 'conversation_id', columns: [text('json')] },
];

export const slot = (table: string, column: string, key: string): SecretSlot => ({ table, column, key });

/**
 * `current`: every sealed column of every sealed row (at_rest 1) is opened under `from`.
 * `legacy`: only the legacy columns are; the others are plaintext, and conversation_data (which had
 * no at_rest column) is sealed whole.
 */
export type SealedLayout = 'current' | 'legacy';

export async function hasSealedRows(s: Sql): Promise<boolean> {
  for (const t of SEALED_TABLES) {
    if (t.table === 'conversation_data') continue;
    const found = await s.rows(`SELECT 1 AS "hit" FROM "${t.table}" WHERE "at_rest" <> 0 LIMIT 1`);
    if (found.length > 0) return true;
  }
  return false;
}

function reseal(
  r: Row,
  t: SealedTable,
  c: SealedColumn,
  from: AtRestCipher,
  to: AtRestCipher,
  layout: SealedLayout,
): unknown {
  const v = r[c.column];
  if (v === null || v === undefined) return null;
  const at = slot(t.slotTable ?? t.table, c.column, String(r[t.key]));
  const sealedBefore = layout === 'current' || c.legacy;
  if (c.text) {
    const plain = sealedBefore ? from.openText(String(v), toInt(r.at_rest), at) : String(v);
    return to.sealText(plain, at);
  }
  const plain = sealedBefore ? from.open(toBytes(v), toInt(r.at_rest), at) : toBytes(v);
  return toParam(to.seal(plain, at));
}

/** Re-seals every sealed row from `from` to `to` (both keyed); run inside one transaction. */
export async function resealAll(
  s: Sql,
  from: AtRestCipher,
  to: AtRestCipher,
  layout: SealedLayout,
): Promise<number> {
  if (!from.encrypted || !to.encrypted) throw new StorageError('re-sealing needs a key on both sides');
  let count = 0;
  for (const t of SEALED_TABLES) {
    const wholeTable = layout === 'legacy' && t.table === 'conversation_data';
    const cols = t.columns.map((c) => `"${c.column}"`).join(', ');
    const where = [...(wholeTable ? [] : ['"at_rest" <> 0']), ...(t.rows ? [t.rows] : [])];
    const rows = await s.rows(
      `SELECT "${t.key}", ${cols}, "at_rest" FROM "${t.table}"${where.length ? ` WHERE ${where.join(' AND ')}` : ''}`,
    );
    const update = `UPDATE "${t.table}" SET ${t.columns.map((c) => `"${c.column}" = ?`).join(', ')}, "at_rest" = ? WHERE "${t.key}" = ?`;
    for (const r of rows) {
      const values = t.columns.map((c) => reseal(r, t, c, from, to, layout));
      await s.run(update, [...values, to.flag, r[t.key]]);
      count++;
    }
  }
  return count;
}
