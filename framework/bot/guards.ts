/**
 * Guards decide who may use a command; they run before its arguments are read. A command names its
 * guard by value: a function of the context, `groupAdmin` (built in), or `namedGuard('admin')` for
 * one supplied to BotRuntime under `guards` (plugins hand theirs over that way). The string forms
 * `'group-admin'` and `'admin'` are accepted as shorthands for the last two; the scanner turns every
 * form into a PlannedGuard, so nothing after it sees a string.
 */
import type { BotContext } from './context.js';

/** A check run before a handler; false skips the handler. */
export type Guard = (ctx: BotContext) => boolean | Promise<boolean>;

/** The group's committer (as of the message) or one of BotRuntime's `admins`; only `admins` in direct. */
export interface BuiltInGuardRef {
  readonly builtIn: 'group-admin';
}

/** A guard the runtime is given under `guards`, looked up by name when the bot is scanned. */
export interface NamedGuardRef {
  readonly named: string;
}

/** The built-in guard that admits a group's committer and the runtime's `admins` (direct: `admins` only). */
export const groupAdmin: BuiltInGuardRef = Object.freeze({ builtIn: 'group-admin' });

/** A guard given by name, resolved at scan time from the `guards` option or a plugin. */
export function namedGuard(name: string): NamedGuardRef {
  return Object.freeze({ named: name });
}

/** What @OnCommand's `guard` option takes. */
export type GuardRef = Guard | BuiltInGuardRef | NamedGuardRef | 'group-admin' | (string & {});

/** Guards the runtime provides without a `guards` entry. */
export const BUILT_IN_GUARDS = ['group-admin'] as const;
/** The name of a built-in guard, e.g. `group-admin`. */
export type BuiltInGuard = (typeof BUILT_IN_GUARDS)[number];

/** A guard after scanning: either a check to call or the built-in group-admin rule. */
export type PlannedGuard =
  | { readonly kind: 'check'; readonly check: Guard; readonly name?: string }
  | { readonly kind: 'group-admin' };

/** A GuardRef in its typed form; `undefined` for a malformed value. */
export function normalizeGuardRef(
  ref: unknown,
): { kind: 'check'; check: Guard } | { kind: 'group-admin' } | { kind: 'named'; name: string } | undefined {
  if (typeof ref === 'function') return { kind: 'check', check: ref as Guard };
  if (ref === 'group-admin') return { kind: 'group-admin' };
  if (typeof ref === 'string') return ref === '' ? undefined : { kind: 'named', name: ref };
  if (typeof ref === 'object' && ref !== null) {
    const r = ref as Partial<BuiltInGuardRef & NamedGuardRef>;
    if (r.builtIn === 'group-admin') return { kind: 'group-admin' };
    if (typeof r.named === 'string' && r.named !== '') return { kind: 'named', name: r.named };
  }
  return undefined;
}
