/**
 * `relay-bot doctor`: checks what a running bot depends on and prints one line per check.
 * Exit 0 when nothing failed, 1 otherwise.
 */
import { randomBytes } from 'node:crypto';
import { connect, type MqttClient } from 'mqtt';
import type { Argv } from 'yargs';
import type { DataSource } from 'typeorm';
import {
  DEFAULT_LEASE_TTL_MS,
  identityFromSecrets,
  keysTopic,
  userIdToHex,
  type UserId,
} from '../../framework/relay/index.js';
import { TypeOrmRelayStore } from '../../framework/store/index.js';
import { brokerUrl, loadConfig, type RelayConfig } from '../config.js';
import { redactUrl } from '../redact-url.js';
import { describeFenced, describeReplicas, describeSharedSlots } from '../replica.js';
import { describeDatabase, openDataSource } from '../runtime.js';

export interface DoctorArgs {
  config?: string;
}

export const command = 'doctor';
export const describe = 'Check the broker, the database, migrations and our published key bundle';
export const builder = (y: Argv): Argv<DoctorArgs> =>
  y.option('config', { type: 'string', describe: 'YAML or JSON config file' });

type Status = 'ok' | 'FAIL' | 'warn' | 'n/a';
const DAY = 86_400;

function line(status: Status, check: string, detail: string): void {
  process.stdout.write(`${status.padEnd(4)}  ${check}: ${detail}\n`);
}

function connectBroker(config: RelayConfig): Promise<MqttClient> {
  const b = config.broker;
  return new Promise((resolve, reject) => {
    const client = connect(brokerUrl(config), {
      protocolVersion: 5,
      clientId: `relay-doctor-${randomBytes(6).toString('hex')}`,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...(b.username !== undefined ? { username: b.username } : {}),
      ...(b.password !== undefined ? { password: b.password } : {}),
    });
    client.once('connect', () => resolve(client));
    client.once('error', (e) => {
      client.end(true);
      reject(e);
    });
    client.once('close', () => reject(new Error('connection closed')));
  });
}

/** The retained payload on `topic`, or undefined after `ms`. */
async function retained(client: MqttClient, topic: string, ms = 3000): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', on);
      resolve(undefined);
    }, ms);
    const on = (t: string, payload: Buffer, packet: { retain?: boolean }): void => {
      if (t !== topic || !packet.retain) return;
      clearTimeout(timer);
      client.off('message', on);
      resolve(payload);
    };
    client.on('message', on);
    client.subscribeAsync(topic, { qos: 1 }).catch((e: Error) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export async function handler(argv: DoctorArgs): Promise<void> {
  const config = loadConfig({ ...(argv.config !== undefined ? { file: argv.config } : {}) });
  let failed = false;
  const fail = (check: string, detail: string): void => {
    failed = true;
    line('FAIL', check, detail);
  };
  line('ok', 'config', config.file ?? 'no file; defaults and environment');
  line(
    config.stateKey ? 'ok' : 'warn',
    'state key',
    config.stateKey ? 'RELAY_STATE_KEY set' : 'RELAY_STATE_KEY not set: keys are stored unencrypted',
  );

  // Database, migrations, identity.
  let ds: DataSource | undefined;
  let userId: UserId | undefined;
  let ownBundle: { bytes: Uint8Array; issuedAt: number } | undefined;
  try {
    ds = await openDataSource(config.database, false, { inspect: true });
    line('ok', 'database', describeDatabase(config.database));
    const pending = await ds.showMigrations();
    if (pending) fail('migrations', 'pending migrations. Fix: relay-bot migrate (start also applies them)');
    else line('ok', 'migrations', 'all applied');
    if (!pending) {
      const store = new TypeOrmRelayStore(ds, {
        closeDataSource: false,
        ...(config.stateKey !== undefined ? { stateKey: config.stateKey } : {}),
      });
      const stored = await store.loadIdentity();
      if (stored) {
        userId = identityFromSecrets(stored.signingSeed, stored.sealSecret).userId;
        ownBundle = await store.loadOwnBundle();
        line('ok', 'identity', userIdToHex(userId));
      } else {
        line('n/a', 'identity', 'none yet (relay-bot id or start creates it)');
      }
      const replicas = await store.leases.listReplicas(DEFAULT_LEASE_TTL_MS);
      if (config.broker.shareGroup !== undefined || replicas.length > 0) {
        const live = replicas.some((r) => r.live);
        const leases = await store.leases.listLeases();
        line(live ? 'ok' : 'n/a', 'replicas', describeReplicas(replicas, leases));
        const fenced = describeFenced(replicas, leases);
        if (fenced !== undefined) line('warn', 'fenced replicas', fenced);
        const shared = describeSharedSlots(replicas, leases);
        if (shared !== undefined) fail('replica slots', shared);
      }
    }
  } catch (e) {
    fail('database', (e as Error).message);
  } finally {
    await ds?.destroy().catch(() => undefined);
  }

  // Broker and our retained bundle.
  let client: MqttClient | undefined;
  try {
    client = await connectBroker(config);
    line('ok', 'broker', `${redactUrl(brokerUrl(config))} accepts MQTT 5`);
  } catch (e) {
    fail(
      'broker',
      `${redactUrl(brokerUrl(config))}: ${(e as Error).message}. Fix: check broker.url / RELAY_BROKER_URL and the credentials${config.broker.url === undefined ? ' (the embedded broker runs only while relay-bot start does)' : ''}`,
    );
  }
  if (client && userId) {
    try {
      const payload = await retained(client, keysTopic(config.topicPrefix, userId));
      const age = ownBundle ? Math.floor(Date.now() / 1000) - ownBundle.issuedAt : undefined;
      if (!payload)
        fail('key bundle', 'nothing retained on our keys topic. Fix: relay-bot start publishes it');
      else if (!ownBundle) fail('key bundle', 'retained, but our store has no bundle');
      else if (!Buffer.from(ownBundle.bytes).equals(payload)) {
        fail(
          'key bundle',
          'the retained bundle is not the one in our store (a stale one, or another process with this identity). Fix: relay-bot keys rotate, or restart the bot',
        );
      } else if (age !== undefined && age >= DAY) {
        fail('key bundle', `ours but ${Math.round(age / 3600)} h old; a running bot refreshes it daily`);
      } else {
        line('ok', 'key bundle', `retained bundle is ours, issued ${Math.round((age ?? 0) / 60)} min ago`);
      }
    } catch (e) {
      fail('key bundle', (e as Error).message);
    }
  }
  await client?.endAsync(true).catch(() => undefined);
  line('n/a', 'clock skew', 'not measurable: MQTT gives clients no broker time; keep NTP running');
  if (failed) process.exitCode = 1;
}
