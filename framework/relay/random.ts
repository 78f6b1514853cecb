/** Randomness as a dependency, like the clock (STYLE.md §2), so tests can make ids predictable. */
import { randomBytes, randomUUID } from 'node:crypto';

/**
 * Source of fresh ids and random bytes for the client shell and the protocol steps (outbox rows,
 * message ids, parked messages, a new identity). MLS, HPKE and the other primitives draw their own.
 */
export interface Random {
  /** A fresh version 4 UUID. */
  uuid(): string;
  /** `n` cryptographically random bytes. */
  bytes(n: number): Uint8Array;
}

/** node:crypto's CSPRNG. The default wherever a Random is optional. */
export const systemRandom: Random = {
  uuid: () => randomUUID(),
  bytes: (n) => new Uint8Array(randomBytes(n)),
};
