import { describe, expect, it } from "vitest";
import { ExecError, inNetns, run, runJson } from "./exec.ts";

describe("run", () => {
  it("returns stdout and stderr of a program that succeeds", async () => {
    const r = await run(["sh", "-c", "printf out; printf err >&2", "ignored-$0"]);
    expect(r).toEqual({ stdout: "out", stderr: "err" });
  });

  it("passes arguments verbatim, never through a shell", async () => {
    const hostile = "$(touch /tmp/skein-pwned); `id`; a b";
    const { stdout } = await run(["printf", "%s", hostile]);
    expect(stdout).toBe(hostile);
  });

  it("fails with argv, exit code and stderr", async () => {
    const err = await run(["sh", "-c", "echo partial; echo broken >&2; exit 3"]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExecError);
    const e = err as ExecError;
    expect(e.exitCode).toBe(3);
    expect(e.stderr).toBe("broken\n");
    expect(e.stdout).toBe("partial\n");
    expect(e.argv).toEqual(["sh", "-c", "echo partial; echo broken >&2; exit 3"]);
    expect(e.message).toContain("exited with code 3: broken");
    expect(e.code).toBe("ExecFailed");
  });

  it("kills a program that outlives its timeout and says so", async () => {
    const err = (await run(["sleep", "5"], { timeoutMs: 100 }).catch((e: unknown) => e)) as ExecError;
    expect(err.timedOut).toBe(true);
    expect(err.message).toContain("timed out");
  });

  it("reports a program that does not exist", async () => {
    const err = (await run(["skein-no-such-program"]).catch((e: unknown) => e)) as ExecError;
    expect(err.exitCode).toBeNull();
    expect(err.message).toContain("could not be run");
  });

  it("survives a program that exits without reading its input", async () => {
    await expect(run(["true"], { input: "x".repeat(1 << 20) })).resolves.toEqual({ stdout: "", stderr: "" });
  });

  it("feeds input on stdin", async () => {
    expect((await run(["cat"], { input: "hello" })).stdout).toBe("hello");
  });
});

describe("runJson", () => {
  it("parses JSON output", async () => {
    expect(await runJson(["printf", '{"a":[1]}'])).toEqual({ a: [1] });
  });
  it("rejects output that is not JSON", async () => {
    await expect(runJson(["printf", "nope"])).rejects.toThrow(/not JSON/);
  });
});

describe("inNetns", () => {
  it("wraps argv with nsenter on the namespace path", () => {
    expect(inNetns("/run/netns/a", ["ip", "link"])).toEqual([
      "nsenter",
      "--net=/run/netns/a",
      "--",
      "ip",
      "link",
    ]);
  });
});
