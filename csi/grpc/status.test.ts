import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { InvalidInputError, SkeinError } from "../../kit/errors.ts";
import { ExecError } from "../../kit/exec.ts";
import { ZfsError, type ZfsErrorCode } from "../zfs/errors.ts";
import { CsiError, type GrpcCodeName, grpcCodeNameOf, toGrpcStatus } from "./status.ts";

describe("Skein errors → gRPC codes", () => {
  const zfs: Array<[ZfsErrorCode, GrpcCodeName]> = [
    ["ZfsAlreadyExists", "ALREADY_EXISTS"],
    ["ZfsNotFound", "NOT_FOUND"],
    ["ZfsOutOfSpace", "RESOURCE_EXHAUSTED"],
    ["ZfsQuotaBelowUsage", "OUT_OF_RANGE"],
    ["ZfsBusy", "FAILED_PRECONDITION"],
    ["ZfsHasDependents", "FAILED_PRECONDITION"],
    ["ZfsDiverged", "FAILED_PRECONDITION"],
    ["ZfsInvalidArgument", "INVALID_ARGUMENT"],
    ["ZfsUnsupported", "UNIMPLEMENTED"],
    ["ZfsUnavailable", "UNAVAILABLE"],
    ["ZfsTimeout", "DEADLINE_EXCEEDED"],
    ["ZfsFailed", "INTERNAL"],
  ];

  it.each(zfs)("%s → %s", (code, grpcCode) => {
    expect(grpcCodeNameOf(new ZfsError(code, "x"))).toBe(grpcCode);
  });

  it.each([
    ["invalid input", new InvalidInputError("bad name"), "INVALID_ARGUMENT"],
    ["a CsiError", new CsiError("ABORTED", "busy with another call"), "ABORTED"],
    ["an unclassified SkeinError", new SkeinError("Whatever", "x"), "INTERNAL"],
    ["a failed program", new ExecError(["mount"], 32, "no", false), "INTERNAL"],
    ["a plain Error", new Error("boom"), "INTERNAL"],
    ["a thrown string", "boom", "INTERNAL"],
  ] as Array<[string, unknown, GrpcCodeName]>)("%s → %s", (_name, err, grpcCode) => {
    expect(grpcCodeNameOf(err)).toBe(grpcCode);
  });

  it("keeps the message as the status details", () => {
    expect(toGrpcStatus(new ZfsError("ZfsOutOfSpace", "pool tank is full"))).toEqual({
      code: status.RESOURCE_EXHAUSTED,
      details: "pool tank is full",
    });
  });
});
