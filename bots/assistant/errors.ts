/**
 * What can go wrong talking to a model server. A ModelError's `code` is MODEL_ and its cause
 * (MODEL_TIMEOUT, …; RelayErrorCode lists them), `reason` the same cause in the bot's own words; the
 * bot turns each reason into one short sentence for the conversation.
 */
import { RelayError, type RelayErrorCode } from '../../index.js';

export type ModelErrorReason =
  /** 401 or 403: the API key is missing or wrong. */
  | 'unauthorized'
  /** 429. */
  | 'rate-limited'
  /** 5xx, or an error object inside the stream. */
  | 'server'
  /** Another 4xx: usually an unknown model or a request the server does not support. */
  | 'rejected'
  /** No first token, or no next one, within the configured time. */
  | 'timeout'
  /** A chunk or body that is not the chat-completions shape, or a stream cut before its end. */
  | 'malformed'
  /** The connection itself failed (refused, DNS, reset before a response). */
  | 'unreachable';

export const MODEL_ERROR_REASONS: readonly ModelErrorReason[] = [
  'unauthorized',
  'rate-limited',
  'server',
  'rejected',
  'timeout',
  'malformed',
  'unreachable',
];

/** Each reason's RelayErrorCode: MODEL_ and the reason. */
const MODEL_CODE: Record<ModelErrorReason, RelayErrorCode> = {
  unauthorized: 'MODEL_UNAUTHORIZED',
  'rate-limited': 'MODEL_RATE_LIMITED',
  server: 'MODEL_SERVER',
  rejected: 'MODEL_REJECTED',
  timeout: 'MODEL_TIMEOUT',
  malformed: 'MODEL_MALFORMED',
  unreachable: 'MODEL_UNREACHABLE',
};

/** A model server call failed; branch on `reason`. `status` is the HTTP status when there was one. */
export class ModelError extends RelayError {
  readonly status: number | undefined;

  constructor(
    readonly reason: ModelErrorReason,
    message: string,
    options?: { cause?: unknown; status?: number },
  ) {
    super(MODEL_CODE[reason], message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.status = options?.status;
  }
}

/** The reason for an HTTP error status. */
export function reasonForStatus(status: number): ModelErrorReason {
  if (status === 401 || status === 403) return 'unauthorized';
  if (status === 429) return 'rate-limited';
  if (status >= 500) return 'server';
  return 'rejected';
}
