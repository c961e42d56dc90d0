import { describe, expect, it } from "vitest";
import { ExecError } from "../../kit/exec.ts";
import { pipeCommands } from "./stream.ts";

async function failure(promise: Promise<void>): Promise<ExecError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ExecError);
  return err as ExecError;
}

describe("pipeCommands", () => {
  it("streams the source's output into the sink", async () => {
    // The sink checks what it read; 4 MiB is more than any pipe buffer holds.
    await pipeCommands(
      ["head", "-c", String(4 * 1024 * 1024), "/dev/zero"],
      ["sh", "-c", 'test "$(wc -c)" -eq 4194304', "sink"],
    );
  });

  it("reports the sink's failure, not the broken pipe it caused in the source", async () => {
    const err = await failure(
      pipeCommands(["yes"], ["sh", "-c", "head -c 10 >/dev/null; echo full >&2; exit 3"]),
    );
    expect(err.argv[0]).toBe("sh");
    expect(err.exitCode).toBe(3);
    expect(err.stderr).toBe("full\n");
  });

  it("reports the source's failure when the source fails first", async () => {
    const err = await failure(pipeCommands(["sh", "-c", "echo no such snapshot >&2; exit 1"], ["cat"]));
    expect(err.argv).toEqual(["sh", "-c", "echo no such snapshot >&2; exit 1"]);
    expect(err.exitCode).toBe(1);
    expect(err.stderr).toContain("no such snapshot");
  });

  it("kills both sides after the timeout", async () => {
    const started = Date.now();
    const err = await failure(pipeCommands(["sleep", "10"], ["cat"], { timeoutMs: 200 }));
    expect(err.timedOut).toBe(true);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("reports a program that cannot be started", async () => {
    const err = await failure(pipeCommands(["skein-no-such-program"], ["cat"]));
    expect(err.exitCode).toBeNull();
  });
});
