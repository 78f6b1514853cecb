/**
 * Plugins through one door: BotRuntime's `plugins` option. A plugin is any of
 *
 *   - middleware: a function (ctx, next), or an object with middleware() (a Composer);
 *   - guards: an object with `guards: { name: (ctx) => boolean }`, which commands then name
 *     (`namedGuard('admin')` or `guard: 'admin'`);
 *   - handlers: an instance of a class with @OnCommand, @OnMessage, @OnJoin … (PingPlugin).
 *
 * and an object may be several at once (AccessPlugin is middleware and guards). The older doors,
 * `use()`, the `guards` option and listing a handler class next to the bots, stay as shorthands.
 */
import { ConfigError } from '../relay/errors.js';
import type { Middleware, MiddlewareLike } from './composer.js';
import type { BotContext } from './context.js';
import type { Guard } from './guards.js';
import { readBotMetadata, type BotClass } from './metadata.js';

/** Anything given in BotRuntime's `plugins` option: middleware, guard providers or handler instances. */
export type Plugin =
  | MiddlewareLike<BotContext>
  | { readonly guards?: Readonly<Record<string, Guard>>; middleware?(): Middleware<BotContext> }
  | object;

/** The middleware, guards and handler instances collected from the plugins. */
export interface PluginParts {
  /** Decorated instances, scanned like the bots. */
  readonly handlers: readonly object[];
  readonly middleware: readonly Middleware<BotContext>[];
  readonly guards: Readonly<Record<string, Guard>>;
}

/** Splits plugins into handlers, middleware and guards; `guards` (the option) is merged in. */
export function collectPlugins(
  plugins: readonly Plugin[] | undefined,
  guards: Readonly<Record<string, Guard>> | undefined,
): PluginParts {
  const handlers: object[] = [];
  const middleware: Middleware<BotContext>[] = [];
  const merged: Record<string, Guard> = { ...guards };
  for (const [i, plugin] of (plugins ?? []).entries()) {
    if (typeof plugin === 'function') {
      middleware.push(plugin as Middleware<BotContext>);
      continue;
    }
    if (typeof plugin !== 'object' || plugin === null) {
      throw new ConfigError(
        `plugins[${i}] is not a plugin: give middleware, an object with guards, or a handler instance`,
      );
    }
    let used = false;
    if (hasHandlers(plugin)) {
      handlers.push(plugin);
      used = true;
    }
    const p = plugin as { guards?: unknown; middleware?: unknown };
    if (typeof p.middleware === 'function') {
      middleware.push((p.middleware as () => Middleware<BotContext>).call(plugin));
      used = true;
    }
    if (p.guards !== undefined) {
      addGuards(merged, p.guards, `plugins[${i}]`);
      used = true;
    }
    if (!used) {
      throw new ConfigError(
        `plugins[${i}] (${plugin.constructor.name}) has no middleware(), guards or decorated handlers`,
      );
    }
  }
  return { handlers, middleware, guards: merged };
}

function hasHandlers(instance: object): boolean {
  const meta = readBotMetadata(instance.constructor as BotClass);
  return (
    meta.commands.length + meta.messages.length + meta.join.length + meta.leave.length + meta.members.length >
      0 || meta.error !== undefined
  );
}

function addGuards(into: Record<string, Guard>, guards: unknown, what: string): void {
  if (typeof guards !== 'object' || guards === null)
    throw new ConfigError(`${what}.guards must be an object of functions`);
  for (const [name, guard] of Object.entries(guards)) {
    if (typeof guard !== 'function')
      throw new ConfigError(`${what}.guards.${name} must be a function (ctx) => boolean`);
    if (Object.hasOwn(into, name)) {
      throw new ConfigError(
        `guard "${name}" is given twice (${what} and another plugin or the guards option); keep one`,
      );
    }
    into[name] = guard as Guard;
  }
}
