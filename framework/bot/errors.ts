/**
 * Errors of the bot layer. A ParseError is the user's mistake, not the bot author's: the runtime
 * answers it with the usage line instead of treating it as a handler failure.
 */
import { RelayError } from '../relay/errors.js';

/** A command's arguments did not parse; its message is safe to show to the user. */
export class ParseError extends RelayError {
  constructor(
    /** What was wrong, safe to show to the user (echoed input is truncated). */
    readonly reason: string,
    /** `usage: /name <arg:type>…` when the command is known, undefined for a malformed head. */
    readonly usage?: string,
  ) {
    // RelayErrorCode has no user-input code; ARGUMENT is the nearest ("the arguments are wrong").
    super('ARGUMENT', usage === undefined ? reason : `${reason} (${usage})`);
  }
}

/** Input echoed in an error message: short, so a 64 KiB argument does not come back in a reply. */
export function quoteForUser(value: string, max = 32): string {
  const cut = value.length > max ? `${value.slice(0, max)}…` : value;
  return JSON.stringify(cut);
}
