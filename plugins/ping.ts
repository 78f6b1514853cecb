/**
 * The ping plugin: `/ping` → `pong` and `/uptime` → how long this bot process has been running.
 * It is a handler class; give it to BotRuntime as a plugin (or next to the bot):
 *
 *   new BotRuntime(new MyBot(), { plugins: [new PingPlugin()] });
 */
import { OnCommand } from '../framework/bot/index.js';

/** PingPlugin's options: the clock it reads uptime from. */
export interface PingPluginOptions {
  /** ms since the epoch; default Date.now. */
  clock?: () => number;
}

/** `1d 2h 3m 4s`, leading zero units left out. */
export function formatDuration(ms: number): string {
  let s = Math.max(0, Math.floor(ms / 1000));
  const parts: string[] = [];
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
  ] as const) {
    const n = Math.floor(s / size);
    s -= n * size;
    if (n > 0 || parts.length > 0) parts.push(`${n}${unit}`);
  }
  parts.push(`${s}s`);
  return parts.join(' ');
}

/** A bot mix-in answering /ping with pong and /uptime with how long the bot has run. */
export class PingPlugin {
  private readonly clock: () => number;
  private readonly startedAt: number;

  constructor(options: PingPluginOptions = {}) {
    this.clock = options.clock ?? Date.now;
    this.startedAt = this.clock();
  }

  @OnCommand('ping', { description: 'answers pong' })
  ping(): string {
    return 'pong';
  }

  @OnCommand('uptime', { description: 'how long the bot has been running' })
  uptime(): string {
    return `up ${formatDuration(this.clock() - this.startedAt)}`;
  }
}
