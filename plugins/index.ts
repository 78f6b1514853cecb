/**
 * Plugins for BotRuntime, given through its one door, the `plugins` option (framework/bot/plugin.ts):
 *
 *   new BotRuntime(new MyBot(), {
 *     plugins: [accessPlugin({ allow, admins }), rateLimit({ capacity: 5, refillPerSecond: 1 }), new PingPlugin()],
 *   });
 *
 * accessPlugin brings the 'admin' guard with it; the middleware run in the order given.
 */
export { helpPlugin, type HelpPluginOptions } from './help.js';
export { rateLimit, rateLimitKey, type RateLimitOptions } from './rate-limit.js';
export { accessPlugin, AccessPlugin, type AccessOptions } from './access.js';
export { PingPlugin, formatDuration, type PingPluginOptions } from './ping.js';
