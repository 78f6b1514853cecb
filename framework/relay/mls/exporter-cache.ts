/**
 * MLS-Exporter outputs (RFC 9420 §8.5) kept per group and epoch, so a value wanted for every
 * outbound message (the access key of PROTOCOL.md §5) is derived once per epoch rather than once
 * per message (issue 12: ~0.1 ms each).
 *
 * An epoch is named by group id, epoch number and confirmed transcript hash. The key schedule
 * follows from those, so two states that forked at one epoch number (a commit made, lost to a
 * stale write and made again with fresh path secrets) never share an entry. Least recently used
 * entries go first once the bound is reached.
 */
import { toHex } from '../bytes.js';
import type { MlsContext } from './context.js';
import { exportSecret } from './engine.js';
import { unwrap, type GroupSession } from './state.js';

/** Entries kept: one per recently active conversation and exported value. */
const DEFAULT_EXPORTER_CACHE_ENTRIES = 4096;

/** A bounded memo of exportSecret() for the current epoch of each group. */
export class ExporterCache {
  private readonly entries = new Map<string, Uint8Array>();

  constructor(private readonly capacity = DEFAULT_EXPORTER_CACHE_ENTRIES) {}

  /** exportSecret(ctx, session, label, context, length) for the session's current epoch; a copy. */
  async export(
    ctx: MlsContext,
    session: GroupSession,
    label: string,
    context: Uint8Array,
    length: number,
  ): Promise<Uint8Array> {
    const { groupId, epoch, confirmedTranscriptHash } = unwrap(session).group.groupContext;
    const key = `${toHex(groupId)}/${epoch}/${toHex(confirmedTranscriptHash)}/${length}/${label}/${toHex(context)}`;
    let value = this.entries.get(key);
    if (value) this.entries.delete(key);
    else value = await exportSecret(ctx, session, label, context, length);
    this.entries.set(key, value);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    return value.slice();
  }

  /** Entries held. */
  get size(): number {
    return this.entries.size;
  }
}
