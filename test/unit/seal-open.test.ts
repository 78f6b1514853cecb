/** What relay open() rejects, always as a VerificationError (see seal.test.ts). */
import { x25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { asUnixSeconds, asUserId, type UnixSeconds } from '../../framework/relay/brand.js';
import { toHex } from '../../framework/relay/bytes.js';
import { VerificationError } from '../../framework/relay/errors.js';
import { createOpener, open, type OpenArgs } from '../../framework/relay/seal.js';
import protocol from '../vectors/protocol.json' with { type: 'json' };
import {
  h,
  recipientId,
  recipientSealSecret,
  sentAt,
  hint,
  tokenEnv,
  powEnv,
  LOW_ORDER_POINTS,
} from './seal-vectors.js';

describe('relay open rejects with VerificationError only', () => {
  const good: OpenArgs = {
    recipientId,
    enc: h(tokenEnv.enc),
    ciphertext: h(tokenEnv.ciphertext),
    sentAt,
    hint,
  };
  let opener: Awaited<ReturnType<typeof createOpener>>;
  beforeAll(async () => {
    opener = await createOpener(recipientSealSecret);
  });

  async function expectRejected(args: OpenArgs): Promise<void> {
    await expect(opener.open(args)).rejects.toBeInstanceOf(VerificationError);
    await expect(open({ ...args, recipientSealSecret })).rejects.toBeInstanceOf(VerificationError);
  }

  test('the unmodified envelope opens (control)', async () => {
    expect(toHex(await opener.open(good))).toBe(protocol.inner_payload.cbor_padded);
  });

  test('a flipped bit anywhere in the ciphertext', async () => {
    const ct = good.ciphertext;
    for (const bit of [0, 7, 8 * 100 + 3, 8 * (ct.length - 17), 8 * (ct.length - 16), 8 * ct.length - 1]) {
      const flipped = ct.slice();
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      await expectRejected({ ...good, ciphertext: flipped });
    }
  });

  test('a flipped bit in enc', async () => {
    const enc = good.enc.slice();
    enc[5]! ^= 0x10;
    await expectRejected({ ...good, enc });
  });

  test('wrong sent_at', async () => {
    await expectRejected({ ...good, sentAt: asUnixSeconds(sentAt + 1) });
    await expectRejected({ ...good, sentAt: asUnixSeconds(sentAt - 3600) });
  });

  test('wrong, missing or surplus hint', async () => {
    const other = hint.slice();
    other[3]! ^= 1;
    await expectRejected({ ...good, hint: other });
    await expectRejected({ ...good, hint: undefined });
    await expectRejected({ ...good, ciphertext: h(powEnv.ciphertext), hint });
    await expectRejected({ ...good, hint: h('d0db4e') });
  });

  test('wrong recipient id', async () => {
    const id = recipientId.slice();
    id[15]! ^= 1;
    await expectRejected({ ...good, recipientId: asUserId(id) });
  });

  test('truncated or extended ciphertext', async () => {
    const ct = good.ciphertext;
    for (const cut of [
      ct.subarray(0, ct.length - 1),
      ct.subarray(0, 16),
      ct.subarray(0, 15),
      new Uint8Array(0),
    ]) {
      await expectRejected({ ...good, ciphertext: cut });
    }
    const longer = new Uint8Array(ct.length + 1);
    longer.set(ct);
    await expectRejected({ ...good, ciphertext: longer });
  });

  test('wrong enc length', async () => {
    for (const n of [0, 31, 33, 64]) {
      const enc = new Uint8Array(n);
      enc.set(good.enc.subarray(0, Math.min(n, 32)));
      await expectRejected({ ...good, enc });
    }
  });

  test('low-order enc points (all-zero shared secret, RFC 9180 §7.1.4)', async () => {
    for (const p of LOW_ORDER_POINTS) {
      // Guard that the list really is low order: noble refuses the zero DH output.
      expect(() => x25519.getSharedSecret(recipientSealSecret, h(p))).toThrow();
      await expectRejected({ ...good, enc: h(p) });
    }
  });

  test('wrong recipient secret', async () => {
    const other = await createOpener(new Uint8Array(32).fill(9));
    await expect(other.open(good)).rejects.toBeInstanceOf(VerificationError);
  });

  test('random garbage never escapes as another error type', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 40 })),
        fc.uint8Array({ maxLength: 300 }),
        fc.option(fc.uint8Array({ maxLength: 6 }), { nil: undefined }),
        async (enc, ciphertext, maybeHint) => {
          await expect(opener.open({ ...good, enc, ciphertext, hint: maybeHint })).rejects.toBeInstanceOf(
            VerificationError,
          );
        },
      ),
      { numRuns: 40 },
    );
  });

  test('a network-supplied sent_at that is not a safe integer is a VerificationError', async () => {
    await expect(opener.open({ ...good, sentAt: -1 as UnixSeconds })).rejects.toBeInstanceOf(
      VerificationError,
    );
    await expect(opener.open({ ...good, sentAt: 1.5 as UnixSeconds })).rejects.toBeInstanceOf(
      VerificationError,
    );
  });
});
