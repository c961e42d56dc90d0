/**
 * Skein's error base: a stable machine `code` that callers branch on, a human
 * message that says what went wrong and what to do, and the `cause`. Components
 * translate these into their caller's language only at their boundary (gRPC
 * status in csi/, CNI error JSON in the plugin, conditions in controllers).
 */
export class SkeinError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Input that can never succeed as given: fix the request, do not retry. */
export class InvalidInputError extends SkeinError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("InvalidInput", message, options);
  }
}

/** A message for any thrown value, for logs and status fields. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
