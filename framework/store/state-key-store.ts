/**
 * The state-key record in relay_meta: read, created on first keyed open, replaced on rotation.
 * Creation and rotation run in one transaction with every re-sealed row, so a crash leaves either
 * the old key and rows or the new ones, never a mix.
 */
import { StorageError } from '../relay/errors.js';
import { AtRestCipher, deriveStateKey } from './crypto-at-rest.js';
import { hasSealedRows, resealAll } from './sealed-columns.js';
import type { Sql } from './sql.js';
import {
  deriveFromRecord,
  newStateKeyRecord,
  parseStateKey,
  parseStateKeyRecord,
  SCRYPT_DEFAULTS,
  STATE_KEY_META,
  verifyKey,
  type ScryptParams,
  type StateKeyInput,
  type StateKeyRecord,
} from './state-key.js';

/** Runs `fn` in one transaction. */
export type InTransaction = <T>(fn: (s: Sql) => Promise<T>) => Promise<T>;

async function readRecord(s: Sql): Promise<StateKeyRecord | undefined> {
  const rows = await s.rows(`SELECT "value" FROM "relay_meta" WHERE "key" = ?`, [STATE_KEY_META]);
  return rows[0] && parseStateKeyRecord(String(rows[0].value));
}

const writeRecord = (s: Sql, r: StateKeyRecord) =>
  s.run(
    `INSERT INTO "relay_meta" ("key", "value") VALUES (?, ?) ON CONFLICT ("key") DO UPDATE SET "value" = excluded."value"`,
    [STATE_KEY_META, JSON.stringify(r)],
  );

/** Serialises record changes between processes (SQLite: BEGIN IMMEDIATE does already). */
async function lockRecord(s: Sql): Promise<void> {
  if (s.backend === 'postgres') await s.run(`LOCK TABLE "relay_meta" IN SHARE ROW EXCLUSIVE MODE`);
}

/**
 * The derived key for `input`. A database without a record gets one; if it has sealed rows, they
 * were sealed under the legacy derivation (crypto-at-rest.ts deriveStateKey) with fewer columns
 * sealed, and are re-sealed under the new key and layout in the same transaction (a wrong key
 * fails there, changing nothing).
 */
export async function unlockStateKey(
  tx: InTransaction,
  input: StateKeyInput,
  params: ScryptParams = SCRYPT_DEFAULTS,
): Promise<Uint8Array> {
  const stored = await tx(readRecord);
  if (stored) return deriveFromRecord(input, stored);
  const fresh = await newStateKeyRecord(input, params);
  const raced = await tx(async (s) => {
    await lockRecord(s);
    const other = await readRecord(s);
    if (other) return other;
    if (await hasSealedRows(s))
      await resealAll(s, new AtRestCipher(deriveStateKey(input)), new AtRestCipher(fresh.key), 'legacy');
    await writeRecord(s, fresh.record);
    return undefined;
  });
  return raced ? deriveFromRecord(input, raced) : fresh.key;
}

/** Re-seals every sealed row from `currentKey` to a key made from `next`; returns the new key. */
export async function rotateStateKey(
  tx: InTransaction,
  currentKey: Uint8Array,
  next: StateKeyInput,
  params: ScryptParams = SCRYPT_DEFAULTS,
): Promise<{ key: Uint8Array; rows: number }> {
  const fresh = await newStateKeyRecord(next, params);
  const rows = await tx(async (s) => {
    await lockRecord(s);
    const record = await readRecord(s);
    if (!record) throw new StorageError('this database has no state-key record: open it with its key first');
    // Another process may have rotated since this one unlocked.
    verifyKey(currentKey, record);
    const n = await resealAll(s, new AtRestCipher(currentKey), new AtRestCipher(fresh.key), 'current');
    await writeRecord(s, fresh.record);
    return n;
  });
  return { key: fresh.key, rows };
}

/** A store's state key: unlocked on first use (one scrypt run, one read of relay_meta), rotatable. */
export class StoreStateKey {
  private unlocked: { cipher: AtRestCipher; key?: Uint8Array } | undefined;
  private unlocking: Promise<void> | undefined;

  constructor(
    private readonly input: StateKeyInput | undefined,
    private readonly tx: InTransaction,
    /** scrypt cost for records this store creates (a new database, a rotation). */
    private readonly params: ScryptParams = SCRYPT_DEFAULTS,
  ) {
    if (input === undefined) this.unlocked = { cipher: new AtRestCipher() };
    // A malformed key (empty, 16 bytes) is the caller's mistake: say so at construction.
    else parseStateKey(input);
  }

  get encrypted(): boolean {
    return this.input !== undefined;
  }

  get cipher(): AtRestCipher {
    if (!this.unlocked) throw new StorageError('the state key is not unlocked yet');
    return this.unlocked.cipher;
  }

  ready(): Promise<void> {
    if (this.unlocked) return Promise.resolve();
    this.unlocking ??= unlockStateKey(this.tx, this.input!, this.params).then(
      (key) => {
        this.unlocked = { cipher: new AtRestCipher(key), key };
      },
      (err: unknown) => {
        // A failed unlock (a database that did not answer, a wrong key) is retried by the next call.
        this.unlocking = undefined;
        throw err;
      },
    );
    return this.unlocking;
  }

  async rotate(next: StateKeyInput): Promise<number> {
    if (this.input === undefined)
      throw new StorageError('rotating the state key needs the current one: set RELAY_STATE_KEY');
    await this.ready();
    const { key, rows } = await rotateStateKey(this.tx, this.unlocked!.key!, next, this.params);
    this.unlocked = { cipher: new AtRestCipher(key), key };
    return rows;
  }
}
