/**
 * Brokers for integration tests. The shared Mosquitto on 127.0.0.1:1883 is used when it answers an
 * MQTT 5 CONNECT; otherwise, or when RELAY_TEST_EMBEDDED=1, the embedded aedes broker. Mosquitto is
 * shared with other test runs, so every test must use `uniqueName()` for topics and client ids.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from 'mqtt';
import { startEmbeddedBroker } from '../../framework/relay/embedded-broker.js';
import { freePort, waitUntilServing } from './host.js';

export type BrokerKind = 'mosquitto' | 'embedded';

export interface TestBroker {
  url: string;
  kind: BrokerKind;
  close(): Promise<void>;
}

const SHARED_MOSQUITTO_URL = 'mqtt://127.0.0.1:1883';

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/** True when `url` completes an MQTT 5 CONNECT within `timeoutMs`. */
export function answersMqtt5(url: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const client = connect(url, {
      protocolVersion: 5,
      clientId: uniqueName('probe'),
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
    });
    const finish = (ok: boolean): void => {
      client.end(true);
      resolve(ok);
    };
    client.once('connect', () => finish(true));
    client.once('error', () => finish(false));
    client.once('close', () => finish(false));
  });
}

let mosquittoAnswers: Promise<boolean> | undefined;
function sharedMosquittoAnswers(): Promise<boolean> {
  mosquittoAnswers ??= answersMqtt5(SHARED_MOSQUITTO_URL);
  return mosquittoAnswers;
}

/** The broker kinds a shared suite should run against, for describe.each. */
export async function testBrokers(): Promise<BrokerKind[]> {
  if (process.env.RELAY_TEST_BROKER_URL) return ['mosquitto'];
  if (process.env.RELAY_TEST_EMBEDDED === '1') return ['embedded'];
  return (await sharedMosquittoAnswers()) ? ['mosquitto', 'embedded'] : ['embedded'];
}

/** A broker of the requested kind, or of the preferred kind when none is given. */
export async function getTestBroker(kind?: BrokerKind): Promise<TestBroker> {
  const external = process.env.RELAY_TEST_BROKER_URL;
  if (kind !== 'embedded' && external) {
    return { url: external, kind: 'mosquitto', close: async () => {} };
  }
  const wantEmbedded = kind === 'embedded' || (kind === undefined && process.env.RELAY_TEST_EMBEDDED === '1');
  if (!wantEmbedded && (await sharedMosquittoAnswers())) {
    return { url: SHARED_MOSQUITTO_URL, kind: 'mosquitto', close: async () => {} };
  }
  if (kind === 'mosquitto') throw new Error(`no Mosquitto answers at ${SHARED_MOSQUITTO_URL}`);
  const broker = await startEmbeddedBroker({ port: 0 });
  return { url: broker.url, kind: 'embedded', close: () => broker.close() };
}

/**
 * A private broker of the given kind, configured as we ship it (Mosquitto: set_tcp_nodelay) and
 * optionally with a Maximum Packet Size (and, Mosquitto only, further config lines). For Mosquitto, a second process on a spare port with its
 * own config, killed by close().
 */
export async function startPrivateBroker(
  kind: BrokerKind,
  opts: { maxPacketSize?: number; extraConfig?: readonly string[] } = {},
): Promise<TestBroker> {
  if (kind === 'embedded') {
    const broker = await startEmbeddedBroker({ port: 0, maximumPacketSize: opts.maxPacketSize ?? 0 });
    return { url: broker.url, kind, close: () => broker.close() };
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'relay-mosquitto-'));
  const port = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  await writeFile(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'set_tcp_nodelay true',
      ...(opts.maxPacketSize ? [`max_packet_size ${opts.maxPacketSize}`] : []),
      ...(opts.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  const child = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `mqtt://127.0.0.1:${port}`;
  const close = async (): Promise<void> => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  if (await waitUntilServing(child, () => answersMqtt5(url, 500))) return { url, kind, close };
  await close();
  throw new Error(`private mosquitto on port ${port} did not start`);
}
