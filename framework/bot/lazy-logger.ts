/**
 * A pino child logger made on first use. Every message gets a logger bound to its conversation,
 * sender and command, yet most messages never log: pino's child() serialises the bindings when it
 * is called (about 30 µs a call, two per command before this; bench/direct-path.ts), so the child
 * is made only when something reads the logger. A call at a level the parent has disabled is a
 * no-op that makes nothing.
 */
import type { Bindings, Logger } from 'pino';

const LEVELS = new Set<string | symbol>(['fatal', 'error', 'warn', 'info', 'debug', 'trace']);
const noop = (): void => undefined;

/** A level the parent will not write; a logger-like object without isLevelEnabled writes all. */
function disabled(parent: Logger, level: string): boolean {
  return typeof parent.isLevelEnabled === 'function' && !parent.isLevelEnabled(level);
}

export function lazyChild(parent: Logger, bindings: Bindings): Logger {
  let child: Logger | undefined;
  const real = (): Logger => (child ??= parent.child(bindings));
  // The parent is only the proxy's shape; every read and write goes to the child.
  return new Proxy(parent, {
    get(_target, key) {
      if (child === undefined && LEVELS.has(key) && disabled(parent, key as string)) return noop;
      const target = real();
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
    set(_target, key, value) {
      return Reflect.set(real(), key, value);
    },
    has(_target, key) {
      return Reflect.has(real(), key);
    },
  });
}
