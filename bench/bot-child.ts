/**
 * The server side of bench/bot.ts, in its own process so its CPU is its own:
 *
 *   bot-child.ts bot  <brokerUrl> <prefix> <postgresUrl> <schema>
 *     RelayClient + TypeOrmRelayStore (Postgres) + BotRuntime(EchoBot), as `relay-bot run` would.
 *   bot-child.ts echo <brokerUrl> <base>
 *     The transport-only baseline: plain MqttTransport, `<base>/bot/<i>` echoed to `<base>/peer/<i>`.
 *
 * Talks to the parent in JSON lines: prints `{"ready":true,"userId":…}` once serving, answers
 * `{"cmd":"cpu"}` on stdin with `{"cpu":{user,system},"queries":n,"queryKinds":{…}}` (CPU µs and
 * Postgres statements since start, in all and by kind, bench/bot-statements.ts), and on `{"cmd":"stop"}`
 * (or stdin closing) shuts down and exits, which is when `--cpu-prof` writes its profile.
 */
import { BotRuntime } from '../framework/bot/index.js';
import { MqttTransport } from '../framework/relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../framework/store/index.js';
import { EchoBot } from '../bots/echo/index.js';
import { benchClient } from './clients.js';
import { runChild, say, serveParent, troubleReport } from './child.js';
import { countStatements } from './bot-statements.js';

type Stop = () => Promise<void>;

/** Statements sent to Postgres by kind (TypeORM's pg driver shares this module), to report per command. */
const statements = countStatements();

async function startBot(url: string, prefix: string, pgUrl: string, schema: string): Promise<Stop> {
  const store = new TypeOrmRelayStore(await createRelayDataSource({ url: pgUrl, schema }));
  const client = await benchClient(url, prefix, {
    store,
    powBits: 8,
    // 100 peers make first contact within a second or two; the default quota would refuse most.
    welcomeQuota: { perSenderPerMinute: 5, totalPerMinute: 100_000 },
  });
  const reportTrouble = troubleReport(client);
  const runtime = new BotRuntime(new EchoBot());
  runtime.attach(client, { store });
  await client.start();
  say({ ready: true, userId: client.userId });
  return async () => {
    await runtime.stop();
    await client.stop();
    await runtime.detach();
    await store.close();
    reportTrouble();
  };
}

async function startEcho(url: string, base: string): Promise<Stop> {
  const echo = new MqttTransport({ url, clientId: `${base}-echo`, sessionExpirySeconds: 0 });
  echo.onMessage(async (m) => {
    // Like the bot: the reply is published without awaiting its PUBACK, then the request is acked.
    const i = m.topic.slice(m.topic.lastIndexOf('/') + 1);
    void echo.publish(`${base}/peer/${i}`, m.payload, { qos: 1 }).catch(() => undefined);
  });
  await echo.connect();
  await echo.subscribe(`${base}/bot/+`, { qos: 1 });
  say({ ready: true });
  return () => echo.end();
}

async function main(argv: readonly string[]): Promise<void> {
  const [mode, url, prefix, pgUrl, schema] = argv;
  if (!url || !prefix || (mode === 'bot' && (!pgUrl || !schema)) || (mode !== 'bot' && mode !== 'echo')) {
    throw new Error(
      'usage: bot-child.ts bot <brokerUrl> <prefix> <pgUrl> <schema> | echo <brokerUrl> <base>',
    );
  }
  const stop = mode === 'bot' ? await startBot(url, prefix, pgUrl!, schema!) : await startEcho(url, prefix);
  serveParent(stop, statements);
}

runChild(main);
