/**
 * `relay-bot keys show` prints the bot's identity and current key bundle; `keys rotate` replaces the
 * published KeyPackage with a fresh one (the old one stays usable for a grace period, like one a
 * Welcome consumed) and publishes the new bundle. The identity key itself cannot be rotated: the
 * user id derives from it, so a new identity is a new user id (a new database).
 * `keys rotate-state-key` re-seals what is encrypted at rest under a new RELAY_STATE_KEY.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'mqtt';
import type { Argv } from 'yargs';
import {
  asPowBits,
  decodeKeyBundle,
  DEFAULT_POW_BITS,
  ensureOwnBundle,
  identityFromSecrets,
  keysTopic,
  mls,
  toHex,
  userIdToHex,
  type UnixSeconds,
} from '../../framework/relay/index.js';
import { brokerUrl, loadConfig, type RelayConfig } from '../config.js';
import { redactUrl } from '../redact-url.js';
import { CommandFailed, UsageError } from '../errors.js';
import { describeDatabase, makeLogger, openStore } from '../runtime.js';
import { rotateStateKeyCommand } from './rotate-state-key.js';

export interface KeysArgs {
  config?: string;
  action?: string;
}

export const command = 'keys <action>';
export const describe =
  "Show the bot's keys, rotate its published KeyPackage, or rotate the state key (RELAY_STATE_KEY)";
export const builder = (y: Argv): Argv<KeysArgs> =>
  y
    .positional('action', {
      type: 'string',
      choices: ['show', 'rotate', 'rotate-state-key'],
      describe: 'show | rotate | rotate-state-key',
    })
    .option('config', { type: 'string', describe: 'YAML or JSON config file' }) as Argv<KeysArgs>;

const iso = (s: number): string => new Date(s * 1000).toISOString();
const now = (): UnixSeconds => Math.floor(Date.now() / 1000) as UnixSeconds;

async function publishRetained(config: RelayConfig, topic: string, payload: Uint8Array): Promise<void> {
  const b = config.broker;
  const client = connect(brokerUrl(config), {
    protocolVersion: 5,
    // Not the bot's client id: that would take over a running bot's session.
    clientId: `relay-keys-${randomBytes(6).toString('hex')}`,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...(b.username !== undefined ? { username: b.username } : {}),
    ...(b.password !== undefined ? { password: b.password } : {}),
  });
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
      client.once('close', () => reject(new Error('connection closed')));
    });
    await client.publishAsync(topic, Buffer.from(payload), { qos: 1, retain: true });
  } finally {
    await client.endAsync(true).catch(() => undefined);
  }
}

export async function handler(argv: KeysArgs): Promise<void> {
  const config = loadConfig({ ...(argv.config !== undefined ? { file: argv.config } : {}) });
  if (argv.action === 'rotate-state-key') return rotateStateKeyCommand(config);
  const log = makeLogger(config, process.env.RELAY_LOG_LEVEL ?? 'warn');
  const { store } = await openStore(config, 'bot', log);
  try {
    const stored = await store.loadIdentity();
    if (!stored) {
      throw new UsageError(
        `no identity in ${describeDatabase(config.database)} yet. Fix: run relay-bot id (or start) first`,
      );
    }
    const identity = identityFromSecrets(stored.signingSeed, stored.sealSecret);
    const userId = userIdToHex(identity.userId);
    if (argv.action === 'show') {
      const bundle = await store.loadOwnBundle();
      const kps = await store.listKeyPackages();
      process.stdout.write(
        [
          `user id:            ${userId}`,
          `signing key:        ${toHex(identity.signingPublic)} (Ed25519)`,
          `sealed-sender key:  ${toHex(identity.sealPublic)} (X25519)`,
          `created:            ${iso(stored.createdAt)}`,
          `encrypted at rest:  ${store.encryptedAtRest ? 'yes' : 'no (set RELAY_STATE_KEY)'}`,
          bundle
            ? `key bundle:         issued ${iso(bundle.issuedAt)}, KeyPackage ${bundle.keyPackageRef.slice(0, 16)}…`
            : 'key bundle:         none yet (published by start)',
          `KeyPackages kept:   ${kps.length}`,
          `database:           ${describeDatabase(config.database)}`,
          '',
        ].join('\n'),
      );
      return;
    }
    // rotate
    const current = await store.loadOwnBundle();
    const at = now();
    if (current) {
      const kp = (await store.listKeyPackages()).find((k) => k.ref === current.keyPackageRef);
      if (kp && kp.consumedAt === undefined) await store.putKeyPackage({ ...kp, consumedAt: at });
    }
    const ctx = await mls.createMlsContext({ provider: 'node' });
    // The profile comes from the bot's code, which this command does not load: keep the published one.
    const profile = current && decodeKeyBundle(current.bytes).profile;
    const bundle = await ensureOwnBundle(
      {
        identity,
        store,
        mls: ctx,
        powBits: asPowBits(config.powBits ?? DEFAULT_POW_BITS),
        ...(config.bot.displayName !== undefined ? { displayName: config.bot.displayName } : {}),
        ...(profile !== undefined ? { profile } : {}),
      },
      at,
    );
    process.stdout.write(
      `new key bundle issued ${iso(bundle.issuedAt)}, KeyPackage ${bundle.keyPackageRef}\n`,
    );
    try {
      await publishRetained(config, keysTopic(config.topicPrefix, identity.userId), bundle.bytes);
      process.stdout.write(`published to ${redactUrl(brokerUrl(config))}\n`);
    } catch (e) {
      throw new CommandFailed(
        `the new bundle is stored but could not be published (${(e as Error).message}); a running bot publishes it within 10 minutes, start publishes it at once`,
      );
    }
  } finally {
    await store.close();
  }
}
