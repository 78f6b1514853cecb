/**
 * Replicas of one bot as real `relay-bot start` processes (issue #13): one config file, one
 * Postgres schema, one share group, a fixed replica slot each, so a replica restarted after
 * SIGKILL comes back with its slot's broker session. Each slot may have a broker url of its own
 * (a publish gate in front of Mosquitto, say).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startBot, tempDir, type RunningBot } from '../cli/helpers.js';

export interface FleetOptions {
  /** An absolute path to the bot module (bot.module). */
  botModule: string;
  brokerUrl: string;
  databaseUrl: string;
  schema: string;
  topicPrefix: string;
  shareGroup: string;
  powBits: number;
  /** Per-slot broker urls that replace `brokerUrl` for that slot. */
  brokerUrlOf?: Record<number, string>;
}

export class ReplicaFleet {
  private readonly running = new Map<number, RunningBot>();
  /** Every process started, for the logs of a failed run. */
  private readonly all: Array<{ slot: number; bot: RunningBot }> = [];

  private constructor(
    private readonly options: FleetOptions,
    private readonly dir: { dir: string; remove(): Promise<void> },
    private readonly configPath: string,
  ) {}

  static async create(options: FleetOptions): Promise<ReplicaFleet> {
    const dir = await tempDir('relay-fleet-');
    const configPath = path.join(dir.dir, 'bot.yaml');
    await writeFile(configPath, `bot:\n  module: ${JSON.stringify(options.botModule)}\n`);
    return new ReplicaFleet(options, dir, configPath);
  }

  /** Starts the replica of `slot`; resolves once it printed its user id (it serves from then). */
  async start(slot: number): Promise<RunningBot> {
    if (this.running.has(slot)) throw new Error(`replica slot ${slot} is already running`);
    const o = this.options;
    const bot = await startBot(['--config', this.configPath], {
      cwd: this.dir.dir,
      timeoutMs: 90_000,
      env: {
        RELAY_BROKER_URL: o.brokerUrlOf?.[slot] ?? o.brokerUrl,
        DATABASE_URL: o.databaseUrl,
        RELAY_DATABASE_SCHEMA: o.schema,
        RELAY_TOPIC_PREFIX: o.topicPrefix,
        RELAY_POW_BITS: String(o.powBits),
        RELAY_SHARE_GROUP: o.shareGroup,
        RELAY_REPLICA_SLOT: String(slot),
        // Warnings (RELAY_STATE_KEY unset) would bury the errors a failure prints.
        RELAY_LOG_LEVEL: 'error',
        // /metrics on a free port: its drop counters say what a failed run's replicas refused.
        RELAY_METRICS_PORT: '0',
      },
    });
    this.running.set(slot, bot);
    this.all.push({ slot, bot });
    return bot;
  }

  /** SIGKILL, and resolves once the process is gone. */
  async kill(slot: number): Promise<void> {
    const bot = this.running.get(slot);
    if (!bot) throw new Error(`replica slot ${slot} is not running`);
    this.running.delete(slot);
    await bot.stop('SIGKILL');
  }

  slots(): number[] {
    return [...this.running.keys()].sort((a, b) => a - b);
  }

  /** The tail of every replica's stderr, for a failure message. */
  stderrTails(chars = 2000): string {
    return this.all
      .map(({ slot, bot }) => `--- slot ${slot}, pid ${bot.child.pid}:\n${bot.stderr().slice(-chars)}`)
      .join('\n');
  }

  /** The non-zero drop counters (relay_drops_total) of every running replica, one line each. */
  async dropCounters(): Promise<string> {
    const lines: string[] = [];
    for (const [slot, bot] of this.running) {
      const url = /^metrics: (\S+)$/m.exec(bot.stdout())?.[1];
      if (url === undefined) continue;
      const text = await fetch(url)
        .then((r) => r.text())
        .catch((e: Error) => `unreadable: ${e.message}`);
      const drops = text
        .split('\n')
        .filter((l) => l.startsWith('relay_drops_total{') && !l.endsWith(' 0'))
        .map((l) => l.replace(/^relay_drops_total/, ''));
      lines.push(`slot ${slot} drops: ${drops.join(' ') || 'none'}`);
    }
    return lines.join('\n');
  }

  async close(): Promise<void> {
    for (const slot of this.slots()) await this.kill(slot);
    await this.dir.remove();
  }
}
