/**
 * CNI errors: the spec's well-known codes (SPEC.md "Error", 0-99) and Skein's
 * own (100+), and their JSON form. Everything the plugin throws becomes one of
 * these at the boundary (plugin.ts); nothing else reaches the runtime.
 */
import { describeError, SkeinError } from "../../kit/errors.ts";

export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  /** Also means: the runtime need not clean up (nothing was changed). */
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  /** STATUS: cannot service ADD. */
  NotAvailable: 50,
  /** STATUS: cannot service ADD, and running pods may have lost connectivity. */
  LimitedConnectivity: 51,
  /**
   * Every address of the node's block is taken. Not 11: nothing tells the
   * plugin the condition will clear (the block may be full of long-lived pods);
   * not 7: the configuration is fine. 0-99 are reserved, so a plugin code.
   */
  BlockExhausted: 100,
  /** The container already has an interface named CNI_IFNAME (the spec says ADD must fail). */
  InterfaceExists: 101,
  /** CHECK found the attachment not as ADD left it. */
  CheckFailed: 102,
  /** Anything unexpected, e.g. `ip` failing; libcni uses 999 for the same. */
  Internal: 999,
} as const;

export class CniError extends SkeinError {
  readonly cniCode: number;
  readonly msg: string;
  readonly details: string;

  constructor(cniCode: number, msg: string, details = "", options?: { cause?: unknown }) {
    super(`Cni${cniCode}`, details ? `${msg}: ${details}` : msg, options);
    this.cniCode = cniCode;
    this.msg = msg;
    this.details = details;
  }
}

export interface ErrorResult {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

export function errorResult(err: unknown, cniVersion: string): ErrorResult {
  const cni =
    err instanceof CniError
      ? err
      : new CniError(CniCode.Internal, "internal error", describeError(err), { cause: err });
  return cni.details
    ? { cniVersion, code: cni.cniCode, msg: cni.msg, details: cni.details }
    : { cniVersion, code: cni.cniCode, msg: cni.msg };
}
