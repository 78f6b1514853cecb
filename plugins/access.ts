/**
 * The access plugin: an allow-list and an admin list of user ids, from configuration.
 *
 *   const rt = new BotRuntime(bot, { plugins: [accessPlugin({ allow: config.allow, admins: config.admins })] });
 *   // commands may now use guard: 'admin' (or namedGuard('admin'))
 *
 * As middleware it silently ignores messages from senders who are not allowed (no reply: the bot
 * does not confirm it exists to strangers). Without `allow` everyone is allowed; admins are always
 * allowed. The 'admin' guard admits admins only. Senders are MLS-authenticated user ids, never ids
 * claimed in the text. Membership updates go through the same middleware: a stranger who opens a
 * direct conversation, or invites the bot into a group, gets no @OnJoin; updates the bot itself
 * caused or only saw (it left a group, a group's members changed: ctx.sender is the bot) pass.
 */
import { userIdSet, type BotContext, type Guard, type Middleware } from '../framework/bot/index.js';

/** Who may talk to the bot (allow) and who counts as an admin. */
export interface AccessOptions {
  /** User ids (32 hex digits) that may talk to the bot; absent means everyone. */
  allow?: readonly string[];
  /** User ids admitted by the 'admin' guard (and always allowed). */
  admins?: readonly string[];
}

/** Middleware that silently drops messages from users not allowed, and an `admin` guard (guards). */
export class AccessPlugin {
  private readonly allowed: Set<string> | undefined;
  private readonly admins: Set<string>;
  /** Given to BotRuntime as a plugin, these guards let commands use `guard: 'admin'`. */
  readonly guards: { readonly admin: Guard };

  constructor(options: AccessOptions = {}) {
    this.allowed = userIdSet(options.allow, 'accessPlugin allow');
    this.admins = userIdSet(options.admins, 'accessPlugin admins') ?? new Set();
    this.guards = { admin: (ctx) => this.isAdmin(ctx.sender) };
  }

  isAllowed(userId: string): boolean {
    const id = userId.toLowerCase();
    return this.allowed === undefined || this.allowed.has(id) || this.admins.has(id);
  }

  isAdmin(userId: string): boolean {
    return this.admins.has(userId.toLowerCase());
  }

  middleware(): Middleware<BotContext> {
    return (ctx, next) => {
      if (this.isAllowed(ctx.sender) || ctx.sender === ctx.bot.userId) return next();
      ctx.log.debug('ignored a sender who is not on the allow-list');
    };
  }
}

/** An AccessPlugin with these options. */
export function accessPlugin(options: AccessOptions = {}): AccessPlugin {
  return new AccessPlugin(options);
}
