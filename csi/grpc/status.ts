/**
 * The one place where Skein's errors become gRPC status codes, with the codes
 * the CSI spec asks for. Handlers throw domain errors (InvalidInputError,
 * ZfsError, …) or, where the spec wants a code that no domain error implies
 * (ABORTED for a concurrent operation, OUT_OF_RANGE for a capacity), a CsiError
 * that names it.
 */
import { status } from "@grpc/grpc-js";
import { describeError, SkeinError } from "../../kit/errors.ts";
import type { ZfsErrorCode } from "../zfs/errors.ts";

export type GrpcCodeName = Exclude<keyof typeof status, number>;

/** An error whose gRPC code is decided by the handler that throws it. */
export class CsiError extends SkeinError {
  readonly grpcCode: GrpcCodeName;

  constructor(grpcCode: GrpcCodeName, message: string, options?: { cause?: unknown }) {
    super(`Csi${grpcCode}`, message, options);
    this.grpcCode = grpcCode;
  }
}

const BY_SKEIN_CODE: Readonly<Record<ZfsErrorCode | "InvalidInput", GrpcCodeName>> = {
  InvalidInput: "INVALID_ARGUMENT",
  ZfsAlreadyExists: "ALREADY_EXISTS",
  ZfsNotFound: "NOT_FOUND",
  ZfsOutOfSpace: "RESOURCE_EXHAUSTED",
  ZfsQuotaBelowUsage: "OUT_OF_RANGE",
  ZfsBusy: "FAILED_PRECONDITION",
  ZfsHasDependents: "FAILED_PRECONDITION",
  ZfsDiverged: "FAILED_PRECONDITION",
  ZfsInvalidArgument: "INVALID_ARGUMENT",
  ZfsUnsupported: "UNIMPLEMENTED",
  ZfsUnavailable: "UNAVAILABLE",
  ZfsTimeout: "DEADLINE_EXCEEDED",
  ZfsFailed: "INTERNAL",
};

/** The gRPC code name for any thrown value; INTERNAL for what nobody classified. */
export function grpcCodeNameOf(err: unknown): GrpcCodeName {
  if (err instanceof CsiError) return err.grpcCode;
  if (err instanceof SkeinError && Object.hasOwn(BY_SKEIN_CODE, err.code)) {
    return BY_SKEIN_CODE[err.code as keyof typeof BY_SKEIN_CODE];
  }
  return "INTERNAL";
}

/** The status a failed call returns: code and a message that says what went wrong. */
export function toGrpcStatus(err: unknown): { code: status; details: string } {
  return { code: status[grpcCodeNameOf(err)], details: describeError(err) };
}
