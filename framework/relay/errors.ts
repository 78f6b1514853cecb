/**
 * The error hierarchy of relay-bot. Every error the framework throws is a RelayError with a stable
 * `code`, so callers branch on codes rather than on message text.
 */
export type RelayErrorCode =
  | 'CODEC'
  | 'CRYPTO_VERIFY'
  | 'PROTOCOL'
  | 'TRANSPORT'
  | 'STORAGE'
  | 'CONFIG'
  | 'HANDLER'
  | 'ARGUMENT'
  // A model server call of an agent (bots/assistant ModelError), one code per cause.
  | 'MODEL_UNAUTHORIZED'
  | 'MODEL_RATE_LIMITED'
  | 'MODEL_SERVER'
  | 'MODEL_REJECTED'
  | 'MODEL_TIMEOUT'
  | 'MODEL_MALFORMED'
  | 'MODEL_UNREACHABLE';

/** The base of every error relay-bot throws; branch on its `code`, not its message. */
export class RelayError extends Error {
  constructor(
    readonly code: RelayErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bytes that are not the one deterministic encoding of a well-formed value. */
export class CodecError extends RelayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CODEC', message, options);
  }
}

/** A signature, MAC, AEAD tag, proof of work or derived identity did not verify. */
export class VerificationError extends RelayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CRYPTO_VERIFY', message, options);
  }
}

/** Well-formed and authentic input that breaks a protocol rule (wrong epoch, wrong member count…). */
export class ProtocolError extends RelayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PROTOCOL', message, options);
  }
}

/** The broker connection failed, or refused a publish or subscription. */
export class TransportError extends RelayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TRANSPORT', message, options);
  }
}

/** The store failed or holds something it cannot read (wrong state key, bad row). */
export class StorageError extends RelayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STORAGE', message, options);
  }
}

/** A conversation's stored state moved on since it was read (another process, or a stale cache). */
export class StaleStateError extends StorageError {
  constructor(
    readonly groupId: string,
    readonly expectedVersion: number,
    readonly storedVersion: number,
  ) {
    super(`state of ${groupId} is at version ${storedVersion}, not ${expectedVersion}`);
  }
}

/** A configuration value is wrong; the message names the key and the fix. */
export class ConfigError extends RelayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CONFIG', message, options);
  }
}

/** A bot handler failed, ran out of time or misused the context. */
export class HandlerError extends RelayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('HANDLER', message, options);
  }
}

/** A programming error by the caller of a framework function (wrong length, out-of-range value). */
export class ArgumentError extends RelayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ARGUMENT', message, options);
  }
}
