/**
 * RelayClient.identity is public API: it must show who the client is (user id, public keys) and
 * nothing that lets a holder of the client object sign or open as the bot.
 */
import { MemoryRelayStore, RelayClient, toHex } from '../../framework/relay/index.js';

test('RelayClient.identity exposes the user id and public keys, never the seeds', async () => {
  const store = new MemoryRelayStore();
  const client = await RelayClient.create({ store, broker: { url: 'mqtt://127.0.0.1:1' } });
  try {
    const stored = (await store.loadIdentity())!;
    const view = client.identity as unknown as Record<string, unknown>;
    expect(Object.keys(view).sort()).toEqual(['sealPublic', 'signingPublic', 'userId']);
    expect(toHex(client.identity.userId)).toBe(client.userId);
    // No property of the view (own or inherited) holds either secret.
    const secrets = [toHex(stored.signingSeed), toHex(stored.sealSecret)];
    for (const v of Object.values(view)) if (v instanceof Uint8Array) expect(secrets).not.toContain(toHex(v));
    expect(view.signingSeed).toBeUndefined();
    expect(view.sealSecret).toBeUndefined();
    expect(Object.isFrozen(view)).toBe(true);
  } finally {
    await client.stop();
  }
});
