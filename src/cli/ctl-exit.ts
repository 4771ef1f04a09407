/**
 * How keyraftctl fails: every expected failure is a CtlError carrying etcdctl's exit code, and
 * the entry point prints it as etcdctl does ("Error: <message>" on stderr) and exits with that
 * code. Scripts written against etcdctl check these codes, so they are etcdctl's own
 * (etcdctl/ctlv3/command/error.go).
 */
export const ExitCode = {
  Success: 0,
  /** An RPC failed (etcd's error message is printed as is). */
  Error: 1,
  BadConnection: 2,
  /** Unparseable txn input. */
  InvalidInput: 3,
  /** A feature the chosen output format or option does not support. */
  BadFeature: 4,
  /** A watch the server canceled. */
  Interrupted: 5,
  /** Wrong positional arguments or conflicting flags. */
  BadArgs: 128,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class CtlError extends Error {
  override name = 'CtlError';
  constructor(readonly exitCode: ExitCode, message: string) {
    super(message);
  }
}

/**
 * A command-line usage error (unknown command or flag, bad flag value). etcdctl (cobra) prints
 * "Error: <message>" and the command's usage, and exits 1.
 */
export class UsageError extends CtlError {
  override name = 'UsageError';
  constructor(message: string, readonly commandPath: string) {
    super(ExitCode.Error, message);
  }
}
