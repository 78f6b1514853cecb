/**
 * `relay-bot start`: runs the configured bot until SIGTERM/SIGINT. With no broker url it runs the
 * embedded MQTT 5 broker in-process; with no database, the embedded SQLite file.
 */
import type { Argv } from 'yargs';
import type { Logger } from 'pino';
import { BotRuntime, type BotRuntimeOptions } from '../../index.js';
import {
  startEmbeddedBroker,
  type EmbeddedBroker,
  ReplicaSlotTaken,
  type LeaseKeeper,
  type ReplicaOptions,
} from '../../framework/relay/index.js';
import { brokerUrl, EMBEDDED_BROKER_HOST, loadConfig, type RelayConfig } from '../config.js';
import { redactUrl } from '../redact-url.js';
import { botAttachmentOptions } from '../attachments-config.js';
import { taskLimitsOf } from '../tasks-config.js';
import { CommandFailed } from '../errors.js';
import { BotMetrics, startMetricsServer, storeCounts, type MetricsServer } from '../metrics.js';
import { currentCliCommand } from '../invocation.js';
import { exampleCommand } from '../example-command.js';
import { releaseDuties, startReplica } from '../replica.js';
import { createClient, describeDatabase, loadBotInstances, makeLogger, openStore } from '../runtime.js';

export interface StartArgs {
  config?: string;
}

export const command = 'start';
export const describe = 'Run the bot (embedded broker and SQLite unless configured otherwise)';
export const builder = (y: Argv): Argv<StartArgs> =>
  y.option('config', {
    type: 'string',
    describe: 'YAML or JSON config file (default ./bot.yaml if present)',
  });

/** The BotRuntime's options from the configuration (bot, limits, attachments, tasks sections). */
export function runtimeOptions(config: RelayConfig, log: Logger): BotRuntimeOptions {
  return {
    ...(config.bot.name !== undefined ? { name: config.bot.name } : {}),
    ...(config.limits.handlerTimeoutMs !== undefined
      ? { handlerTimeoutMs: config.limits.handlerTimeoutMs }
      : {}),
    ...(config.limits.stopGraceMs !== undefined ? { stopGraceMs: config.limits.stopGraceMs } : {}),
    logger: log,
    attachments: botAttachmentOptions(config.attachments, config.baseDir),
    tasks: taskLimitsOf(config.tasks),
  };
}

/**
 * The client's replica options: its registry id, the registry, and its LeaseKeeper as the
 * membership the client fences after replica.fenceAfterMs without the broker.
 */
export function replicaClientOptions(
  config: RelayConfig,
  keeper: LeaseKeeper,
  registry: ReplicaOptions['registry'],
): ReplicaOptions {
  return {
    replicaId: keeper.holder,
    registry,
    membership: keeper,
    // Its client id's session lease: no drain takes its session while it runs (session-claim.ts).
    sessionKeeper: keeper,
    ...(config.replica.fenceAfterMs !== undefined ? { fenceAfterMs: config.replica.fenceAfterMs } : {}),
  };
}

export async function handler(argv: StartArgs): Promise<void> {
  const config = loadConfig({ ...(argv.config !== undefined ? { file: argv.config } : {}) });
  const log = makeLogger(config);
  const { instances, source } = await loadBotInstances(config);
  const runtime = new BotRuntime(instances, runtimeOptions(config, log));

  let broker: EmbeddedBroker | undefined;
  if (config.broker.url === undefined) {
    // aedes 2.0.0-beta.1 is the only aedes release that speaks MQTT 5 (the 0.x line is MQTT 3.1.1
    // only), and Relay needs MQTT 5: message expiry, session expiry, no-local. Fine for one process
    // in development; run Mosquitto in production (deploy/mosquitto).
    try {
      broker = await startEmbeddedBroker({ host: EMBEDDED_BROKER_HOST, port: config.broker.embeddedPort });
    } catch (e) {
      throw new CommandFailed(
        `cannot start the embedded broker on ${EMBEDDED_BROKER_HOST}:${config.broker.embeddedPort}: ${(e as Error).message}${(e as Error).cause ? ` (${((e as Error).cause as Error).message})` : ''}. Fix: stop the other process on that port, set broker.embeddedPort, or set broker.url to a running broker`,
      );
    }
    log.info({ url: broker.url }, 'embedded MQTT 5 broker started (development only)');
  }

  const { store, dataSource } = await openStore(config, 'bot', log);
  // Replicas: one of them does each single-owner duty (scheduler, housekeeping) at a time. Taken
  // before the client starts, so its start-up housekeeping knows whether it is ours.
  let replica;
  try {
    replica = await startReplica(config, store.leases, log);
  } catch (e) {
    await store.close().catch(() => undefined);
    await broker?.close();
    // Another live process on this fixed slot: a configuration error, exit 2, its message the fix.
    throw e instanceof CommandFailed || e instanceof ReplicaSlotTaken
      ? e
      : new CommandFailed(`cannot start as a replica: ${(e as Error).message}`);
  }
  const leases = replica?.keeper;
  if (replica?.slot !== undefined) config.broker.replicaSlot = replica.slot;
  const metrics =
    config.metrics.port !== undefined
      ? new BotMetrics({
          runtime,
          ...(leases && replica
            ? {
                replica: {
                  replicaId: replica.label,
                  owned: () => leases.owned(),
                  get fenced() {
                    return leases.fenced;
                  },
                },
              }
            : {}),
        })
      : undefined;
  let metricsServer: MetricsServer | undefined;
  let client;
  try {
    if (metrics) {
      // Listening before the client starts: a taken port fails fast; /healthz says 503 starting.
      const { host, port } = config.metrics;
      try {
        metricsServer = await startMetricsServer(metrics, { host, port: port! });
      } catch (e) {
        throw new CommandFailed(
          `cannot serve metrics on ${host}:${port}: ${(e as Error).message}. Fix: set metrics.port (RELAY_METRICS_PORT) to a free port, or metrics.host to an address of this machine`,
        );
      }
    }
    // The bot's signed profile (its description and commands) goes out with its key bundle.
    client = await createClient(config, 'bot', store, log, {
      profile: runtime.profile,
      ...(leases ? { duties: leases } : {}),
      // Its outbox rows carry its registry id, so a dead replica's are told apart and claimed.
      // The client fences this replica (its membership) while the broker is unreachable.
      ...(leases ? { replica: replicaClientOptions(config, leases, store.leases) } : {}),
    });
    // With the store, the scheduler runs and ctx.schedule() works (bots/notes reminders).
    runtime.attach(metrics ? metrics.instrument(client, storeCounts(dataSource)) : client, {
      store,
      // Its open-reply markers name this replica: another replica ends them only once it is dead.
      ...(leases ? { duties: leases, replica: { replicaId: leases.holder, registry: store.leases } } : {}),
    });
    client.on('error', (e) => log.error({ err: e }, 'relay client error'));
    await client.start();
    metrics?.markRunning();
  } catch (e) {
    await metricsServer?.close();
    await leases?.stop();
    await store.close().catch(() => undefined);
    await broker?.close();
    throw e instanceof CommandFailed
      ? e
      : new CommandFailed(
          `cannot start the bot on ${redactUrl(brokerUrl(config))}: ${(e as Error).message}. Fix: check broker.url / RELAY_BROKER_URL and that the broker is running`,
        );
  }
  log.info(
    {
      bot: runtime.name,
      module: source,
      broker: redactUrl(brokerUrl(config)),
      database: describeDatabase(config.database),
      // The holder is this process's (doctor lists it): the label stays the slot's across restarts.
      ...(replica
        ? { replica: replica.label, holder: replica.keeper.holder, leases: replica.keeper.owned() }
        : {}),
      ...(metricsServer ? { metrics: `${metricsServer.url}/metrics` } : {}),
    },
    'bot started',
  );
  const id = client.userId;
  const cli = currentCliCommand();
  process.stdout.write(
    [
      `${runtime.name} is running.`,
      `user id: ${id}`,
      'Talk to it:',
      `  ${cli} chat ${id}`,
      `  ${cli} send ${id} ${exampleCommand(runtime.commandList())} --wait 10`,
      `  in a group: ${cli} chat, then /group create <name> ${id}`,
      ...(metricsServer
        ? [`metrics: ${metricsServer.url}/metrics`, `health: ${metricsServer.url}/healthz`]
        : []),
      '',
    ].join('\n'),
  );

  const running = client;
  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting at once');
        process.exit(signal === 'SIGINT' ? 130 : 143);
      }
      stopping = true;
      metrics?.markStopping();
      log.info({ signal }, 'stopping: finishing messages in flight (send the signal again to exit at once)');
      void (async () => {
        try {
          // Finishes the messages in the conversation lanes, publishes their committed replies, then
          // disconnects; anything the broker delivered but we did not acknowledge is redelivered to
          // the next run (persistent MQTT session), and unsent replies stay in the outbox.
          await runtime.stop();
          // Released while still connected: another replica takes the duties over at once. The
          // replica stays registered until its client published what it committed, so its
          // outbox rows are not claimed as a dead replica's meanwhile (cli/replica.ts).
          await releaseDuties(leases);
          await running.stop();
          await leases?.stop();
          metrics?.detach();
          await metricsServer?.close();
          await store.close();
          await broker?.close();
          log.info('stopped');
        } catch (e) {
          log.error({ err: e }, 'error while stopping');
          process.exitCode = 1;
        }
        resolve();
      })();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
