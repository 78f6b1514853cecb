/**
 * Decrypting a PrivateMessage's SenderData once (RFC 9420 §6.3.2).
 *
 * The receive path reads the sender before processing (sender.ts: the sealed-sender binding and
 * the committer checks need it), and ts-mls's processPrivateMessage decrypts the same SenderData
 * again with no way to pass it in. Both run the same pure functions on the same inputs: two
 * HKDF-Expand calls (key and nonce from the ciphertext sample) and one AES-GCM open. The peek runs
 * them through a recording cipher suite; processing then gets a suite that answers exactly those
 * calls, matched on every input byte, from the record, and passes anything else through. A call
 * that does not match byte for byte is computed as usual, so the memo can only save work, never
 * change a result.
 */
import type { CiphersuiteImpl, Hpke, Kdf } from 'ts-mls';
import { equalBytes } from '../bytes.js';

interface ExpandCall {
  readonly prk: Uint8Array;
  readonly info: Uint8Array;
  readonly len: number;
  readonly out: Uint8Array;
}

interface AeadCall {
  readonly key: Uint8Array;
  readonly nonce: Uint8Array;
  readonly aad: Uint8Array | undefined;
  readonly ciphertext: Uint8Array;
  readonly out: Uint8Array;
}

const copy = (b: Uint8Array): Uint8Array => new Uint8Array(b);

const sameAad = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
  a === undefined || b === undefined ? a === b : equalBytes(a, b);

/** One message's SenderData work: recorded while peeking, replayed while processing. */
export class SenderDataMemo {
  private readonly expands: ExpandCall[] = [];
  private readonly opens: AeadCall[] = [];

  /** `cs` with its HKDF-Expand and AEAD open recorded into this memo. */
  recording(cs: CiphersuiteImpl): CiphersuiteImpl {
    const kdf = override<Kdf>(cs.kdf, {
      expand: async (prk, info, len) => {
        const out = await cs.kdf.expand(prk, info, len);
        this.expands.push({ prk: copy(prk), info: copy(info), len, out: copy(out) });
        return out;
      },
    });
    const hpke = override<Hpke>(cs.hpke, {
      decryptAead: async (key, nonce, aad, ciphertext) => {
        const out = await cs.hpke.decryptAead(key, nonce, aad, ciphertext);
        this.opens.push({
          key: copy(key),
          nonce: copy(nonce),
          aad: aad && copy(aad),
          ciphertext: copy(ciphertext),
          out: copy(out),
        });
        return out;
      },
    });
    return { ...cs, kdf, hpke };
  }

  /** `cs` answering the recorded calls (each once) from this memo; `cs` itself when none were. */
  replaying(cs: CiphersuiteImpl): CiphersuiteImpl {
    if (this.expands.length === 0 && this.opens.length === 0) return cs;
    const kdf = override<Kdf>(cs.kdf, {
      expand: (prk, info, len) => {
        const i = this.expands.findIndex(
          (c) => c.len === len && equalBytes(c.prk, prk) && equalBytes(c.info, info),
        );
        if (i < 0) return cs.kdf.expand(prk, info, len);
        return Promise.resolve(copy(this.expands.splice(i, 1)[0]!.out));
      },
    });
    const hpke = override<Hpke>(cs.hpke, {
      decryptAead: (key, nonce, aad, ciphertext) => {
        const i = this.opens.findIndex(
          (c) =>
            equalBytes(c.ciphertext, ciphertext) &&
            equalBytes(c.key, key) &&
            equalBytes(c.nonce, nonce) &&
            sameAad(c.aad, aad),
        );
        if (i < 0) return cs.hpke.decryptAead(key, nonce, aad, ciphertext);
        return Promise.resolve(copy(this.opens.splice(i, 1)[0]!.out));
      },
    });
    return { ...cs, kdf, hpke };
  }

  /** Zeroes what is left (the SenderData key and nonce are secrets of the epoch) and forgets it. */
  wipe(): void {
    for (const c of this.expands.splice(0)) c.out.fill(0);
    for (const c of this.opens.splice(0)) {
      c.key.fill(0);
      c.nonce.fill(0);
      c.out.fill(0);
    }
  }
}

/**
 * `base` with some methods replaced. A derived object rather than a spread: a provider's
 * implementation may keep its other methods on a prototype, which a spread would drop.
 */
function override<T extends object>(base: T, methods: Partial<T>): T {
  return Object.assign(Object.create(base) as T, methods);
}
