/**
 * Two kinds of failure. A UserError is something the operator can fix: one line saying what went
 * wrong and one hint saying what to try; it never prints a stack trace (unless --debug). Anything
 * else is a bug in elastic and is reported as such.
 *
 * Exit codes are stable and documented in the README.
 */
export const ExitCode = {
  ok: 0,
  failure: 1, // generic failure, or a bug
  usage: 2, // bad flags or arguments
  unavailable: 3, // a daemon or API we need cannot be reached (dockerd down, endpoint unreachable)
  permission: 4, // not root, socket permission denied, AccessDenied
  config: 5, // a config/static file is missing or malformed
  refused: 6, // a guardrail refused to apply (min backends, max change), or the kernel/proxy rejected it
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(
    message: string,
    readonly hint?: string,
    readonly exitCode: ExitCodeValue = ExitCode.failure,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class BugError extends Error {
  override readonly name = 'BugError';
}

export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError;
}

/** A one-line, terminal-safe rendering of any error for logs. */
export function describeError(err: unknown): string {
  if (err instanceof UserError) return err.hint ? `${err.message} (${err.hint})` : err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
