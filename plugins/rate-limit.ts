/**
 * The rate-limit plugin: a token bucket per sender. Each message takes one token; the bucket holds
 * `capacity` tokens and refills at `refillPerSecond`. A message that finds the bucket empty is not
 * handled; the first such message gets a refusal reply, later ones are dropped silently until a
 * token is available again (so a flood does not turn into a flood of refusals).
 *
 * The bucket is kept in the message's transaction (ctx.tx) under `ratelimit:<bot>:<sender>`, so it
 * commits with the message: it holds across restarts and across processes sharing the store, and
 * a message redelivered after a crash is not charged twice.
 *
 *   new BotRuntime(bot, { plugins: [rateLimit({ capacity: 5, refillPerSecond: 0.5 })] });
 */
import { parseStored, type BotContext, type Middleware } from '../framework/bot/index.js';
import { ConfigError } from '../framework/relay/index.js';

/** Token bucket per sender: burst size and refill rate. */
export interface RateLimitOptions {
  /** Burst size: messages a sender may send at once (at least 1). */
  capacity: number;
  /** Tokens added per second. */
  refillPerSecond: number;
  /** ms since the epoch; default Date.now. Tests pass their own. */
  clock?: () => number;
  /**
   * The refusal: a text, a function of the seconds until the next token, or false for none.
   * Default: `slow down: try again in N s`.
   */
  reply?: string | false | ((retryAfterSeconds: number) => string);
}

interface Bucket {
  tokens: number;
  /** ms; when `tokens` was computed. */
  at: number;
  /** The sender has been told since the bucket ran empty. */
  refused: boolean;
}

/** The conversation-data key of a sender's token bucket. */
export const rateLimitKey = (bot: string, sender: string): string => `ratelimit:${bot}:${sender}`;

function readBucket(json: string | undefined, capacity: number, now: number): Bucket {
  let v: unknown;
  try {
    v = parseStored(json);
  } catch {
    v = undefined;
  }
  const b = v as Partial<Bucket> | undefined;
  if (!b || typeof b.tokens !== 'number' || typeof b.at !== 'number' || !Number.isFinite(b.tokens)) {
    return { tokens: capacity, at: now, refused: false };
  }
  return { tokens: Math.min(capacity, Math.max(0, b.tokens)), at: b.at, refused: b.refused === true };
}

/** Middleware that drops a sender's messages past the rate; the bucket is kept in the message's transaction. */
export function rateLimit(options: RateLimitOptions): Middleware<BotContext> {
  const { capacity, refillPerSecond } = options;
  if (!Number.isFinite(capacity) || capacity < 1) {
    throw new ConfigError(`rateLimit capacity must be a number of at least 1, got ${capacity}`);
  }
  if (!Number.isFinite(refillPerSecond) || refillPerSecond <= 0) {
    throw new ConfigError(`rateLimit refillPerSecond must be a positive number, got ${refillPerSecond}`);
  }
  const clock = options.clock ?? Date.now;
  const refusal = (seconds: number): string | undefined => {
    if (options.reply === false) return undefined;
    if (typeof options.reply === 'string') return options.reply;
    if (typeof options.reply === 'function') return options.reply(seconds);
    return `slow down: try again in ${seconds} s`;
  };
  return async (ctx, next) => {
    // Membership changes are not messages a sender can flood with, and have no transaction.
    if (ctx.update.kind !== 'message') return next();
    const key = rateLimitKey(ctx.bot.name, ctx.sender);
    const now = clock();
    const bucket = readBucket(await ctx.tx.loadData(key), capacity, now);
    // A clock that went backwards refills nothing rather than draining the bucket.
    const elapsed = Math.max(0, now - bucket.at) / 1000;
    const tokens = Math.min(capacity, bucket.tokens + elapsed * refillPerSecond);
    if (tokens >= 1) {
      const next_: Bucket = { tokens: tokens - 1, at: now, refused: false };
      ctx.tx.saveData(key, JSON.stringify(next_));
      return next();
    }
    ctx.tx.saveData(key, JSON.stringify({ tokens, at: now, refused: true } satisfies Bucket));
    ctx.log.info('rate limited');
    if (bucket.refused) return;
    const text = refusal(Math.max(1, Math.ceil((1 - tokens) / refillPerSecond)));
    if (text !== undefined) ctx.reply(text);
  };
}
