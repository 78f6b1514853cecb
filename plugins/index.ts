/**
 * Plugins: middleware and handler classes for BotRuntime, exported from the package root
 * ('relay-bot') and alone as `relay-bot/plugins`.
 *
 *   const access = accessPlugin({ allow, admins });
 *   const rt = new BotRuntime([new MyBot(), new PingPlugin()], { guards: { ...access.guards } });
 *   rt.use(access, rateLimit({ capacity: 5, refillPerSecond: 1 }));
 */
export { helpPlugin, type HelpPluginOptions } from './help.js';
export { rateLimit, rateLimitKey, type RateLimitOptions } from './rate-limit.js';
export { accessPlugin, AccessPlugin, type AccessOptions } from './access.js';
export { PingPlugin, formatDuration, type PingPluginOptions } from './ping.js';
