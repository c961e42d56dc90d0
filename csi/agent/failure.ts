/**
 * What the agent writes into `status.error` when converging fails: the gRPC
 * status code (by its CSI spec name) the CSI controller is to return, and a
 * message that says what to do. The agent decides the code because only it
 * sees why ZFS refused; the controller passes it through unchanged. The
 * mapping itself is the one csi/grpc/status.ts makes for every CSI call.
 */
import type { VolumeError } from "../../api/v1alpha1/index.ts";
import { describeError } from "../../kit/errors.ts";
import { grpcCodeNameOf } from "../grpc/status.ts";

export type Failure = VolumeError;

const MAX_MESSAGE = 4096;

export function failureOf(err: unknown): Failure {
  // Only "OK" is outside the CRD's enum, and no error maps to it.
  const grpcCode = grpcCodeNameOf(err) as Failure["grpcCode"];
  const message = describeError(err);
  return {
    grpcCode,
    message: message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message,
  };
}

/** Condition reasons are CamelCase words: RESOURCE_EXHAUSTED → ResourceExhausted. */
export function reasonOf(code: Failure["grpcCode"]): string {
  return code
    .toLowerCase()
    .split("_")
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join("");
}
