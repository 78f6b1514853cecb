/**
 * The signed bot profile end to end on Mosquitto (PROTOCOL.md §4 key 7, §8): a bot's runtime builds
 * the profile from its decorators, its client publishes it in the retained bundle, and a peer reads
 * it through the full bundle check (real KeyPackage, signature). A bundle whose profile was changed
 * on the way is rejected and counted as `bundle_invalid`.
 */
import { Bot, BotRuntime, OnCommand } from '../../framework/bot/index.js';
import {
  decodeKeyBundle,
  keysTopic,
  MemoryRelayStore,
  RelayClient,
  userIdFromHex,
  VerificationError,
} from '../../framework/relay/index.js';
import { RawMqtt } from '../support/attacker.js';
import { uniqueName } from '../support/broker.js';
import { useRelayClients } from '../support/relay-clients.js';

@Bot({ name: 'Reminder', description: 'Reminds you of things' })
class Reminder {
  @OnCommand('remind', { args: '<minutes:int> <text...>', description: 'reminds you in a few minutes' })
  remind(): string {
    return 'noted';
  }
}

const relay = useRelayClients('mosquitto');
const { clients } = relay;

async function startClient(prefix: string, extra: Partial<Parameters<typeof RelayClient.create>[0]> = {}) {
  const client = await relay.create({
    store: new MemoryRelayStore(),
    topicPrefix: prefix,
    powBits: 8,
    bundleFetchTimeoutMs: 5_000,
    ...extra,
  });
  await client.start();
  return client;
}

test("a peer reads the bot's signed profile from its retained bundle; a tampered one is rejected", async () => {
  const prefix = uniqueName('relay-profile');
  const runtime = new BotRuntime(new Reminder());
  const bot = await startClient(prefix, { profile: runtime.profile, displayName: 'Reminder' });
  runtime.attach(bot);
  const peer = await startClient(prefix);

  const seen = await peer.verifyPeer(bot.userId);
  expect(seen.displayName).toBe('Reminder');
  expect(seen.profile).toEqual({
    bot: true,
    description: 'Reminds you of things',
    commands: [
      { name: 'remind', args: '<minutes:int> <text…>', description: 'reminds you in a few minutes' },
      { name: 'help', args: '[command]', description: 'this list; /help <command> shows how to use one' },
    ],
  });
  expect(peer.drops.get('bundle_invalid')).toBe(0);

  // The bot goes away (or it would re-publish over a foreign payload at once); a forger rewrites
  // its retained bundle with another description of the same length.
  const topic = keysTopic(prefix, userIdFromHex(bot.userId));
  const raw = await RawMqtt.connect(relay.broker.url);
  try {
    await raw.watch(topic);
    const published = await raw.nth(topic, 1);
    expect(decodeKeyBundle(published).profile).toEqual(seen.profile);
    await runtime.stop();
    await bot.stop();
    clients.splice(clients.indexOf(bot), 1);
    const text = Buffer.from(published).toString('latin1');
    const forged = Buffer.from(text.replace('Reminds you of things', 'Sends me your secrets'), 'latin1');
    expect(forged.equals(Buffer.from(published))).toBe(false);
    expect(decodeKeyBundle(forged).profile?.description).toBe('Sends me your secrets');
    await raw.publish(topic, forged, { retain: true });

    const other = await startClient(prefix);
    await expect(other.verifyPeer(bot.userId)).rejects.toThrow(VerificationError);
    expect(other.drops.get('bundle_invalid')).toBe(1);
  } finally {
    await raw.clearRetained(topic);
    await raw.close();
  }
});
