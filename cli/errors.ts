/**
 * Errors the CLI turns into exit codes: 2 for anything the user fixes in the command line, the
 * configuration or the environment (the message names the fix), 1 for a run that did not succeed.
 */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export class CommandFailed extends Error {
  readonly exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = 'CommandFailed';
  }
}
