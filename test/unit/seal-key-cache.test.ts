/** SealKeyCache: recipients' seal keys parsed once per key, bounded, and sealing with it still opens. */
import { x25519 } from '@noble/curves/ed25519.js';
import { asUnixSeconds, asUserId } from '../../framework/relay/brand.js';
import { ArgumentError } from '../../framework/relay/errors.js';
import { createOpener, SealKeyCache, seal } from '../../framework/relay/seal.js';

const recipientId = asUserId(new Uint8Array(16).fill(3));
const sentAt = asUnixSeconds(1_800_000_000);

function keyPair(): { secret: Uint8Array; public: Uint8Array } {
  const secret = x25519.utils.randomSecretKey();
  return { secret, public: x25519.getPublicKey(secret) };
}

describe('SealKeyCache', () => {
  test('holds one parsed key per key bytes, and sealing with it opens', async () => {
    const cache = new SealKeyCache(4);
    const r = keyPair();
    const plaintext = new TextEncoder().encode('cached key');
    const sealed = await seal({ recipientId, recipientSealKey: r.public, plaintext, sentAt, keys: cache });
    const again = await seal({
      recipientId,
      recipientSealKey: Uint8Array.from(r.public),
      plaintext,
      sentAt,
      keys: cache,
    });
    const opener = await createOpener(r.secret);
    expect(await opener.open({ recipientId, ...sealed, sentAt })).toEqual(plaintext);
    expect(await opener.open({ recipientId, ...again, sentAt })).toEqual(plaintext);
    expect(cache.size).toBe(1);
  });

  test('keeps at most its limit', async () => {
    const cache = new SealKeyCache(2);
    const plaintext = new TextEncoder().encode('x');
    for (const r of [keyPair(), keyPair(), keyPair()]) {
      await seal({ recipientId, recipientSealKey: r.public, plaintext, sentAt, keys: cache });
    }
    expect(cache.size).toBe(2);
  });

  test('refuses a key of the wrong length and a limit below one', async () => {
    const plaintext = new Uint8Array(1);
    await expect(
      seal({
        recipientId,
        recipientSealKey: new Uint8Array(31),
        plaintext,
        sentAt,
        keys: new SealKeyCache(),
      }),
    ).rejects.toBeInstanceOf(ArgumentError);
    expect(() => new SealKeyCache(0)).toThrow(ArgumentError);
  });
});
