// The sandbox's errors: each has a code for programs and a sentence for the user that says what to do.

export type SandboxErrorCode =
  | 'NOT_ROOT'
  | 'BAD_NAME'
  | 'MISSING_BINARY'
  | 'ROUTE_OVERLAP'
  | 'NOT_UP'
  | 'BUSY'
  | 'COMMAND_FAILED'
  | 'NOT_READY';

export class SandboxError extends Error {
  override readonly name = 'SandboxError';
  constructor(
    readonly code: SandboxErrorCode,
    message: string,
  ) {
    super(message);
  }
}
