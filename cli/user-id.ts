/** User-id checks for arguments, chat commands and the configuration: framework/relay's rule, as a boolean. */
import { userIdFromHex } from '../framework/relay/index.js';

/** 32 lower-case hex characters (framework/relay userIdFromHex); lower-case the input first. */
export function isUserIdHex(s: string): boolean {
  try {
    userIdFromHex(s);
    return true;
  } catch {
    return false;
  }
}
