import { spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { exitCodeFor, handleTermination, type TerminationSignal } from "./lifecycle.ts";
import { createLogger } from "./log.ts";

const quiet = createLogger("lifecycle-test", "silent");

describe("handleTermination", () => {
  it("aborts on the first signal and forces on the second", () => {
    const emitter = new EventEmitter();
    const forced: TerminationSignal[] = [];
    const t = handleTermination({ emitter, logger: quiet, onForce: (s) => forced.push(s) });
    expect(t.signal.aborted).toBe(false);
    emitter.emit("SIGTERM");
    expect(t.signal.aborted).toBe(true);
    expect(t.signal.reason).toBe("SIGTERM");
    expect(forced).toEqual([]);
    emitter.emit("SIGINT");
    expect(forced).toEqual(["SIGINT"]);
    t.dispose();
    expect(emitter.listenerCount("SIGTERM") + emitter.listenerCount("SIGINT")).toBe(0);
  });

  it("maps signals to the shell's exit codes", () => {
    expect(exitCodeFor("SIGTERM")).toBe(143);
    expect(exitCodeFor("SIGINT")).toBe(130);
  });
});

describe("handleTermination in a real process", () => {
  const dir = mkdtempSync(join(tmpdir(), "skein-lifecycle-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // .mts: top-level await needs ESM, and the temp dir has no package.json saying so.
  const script = join(dir, "entry.mts");
  writeFileSync(
    script,
    `import { exitCodeFor, handleTermination } from ${JSON.stringify(resolve(import.meta.dirname, "lifecycle.ts"))};
const { signal, dispose } = handleTermination({ onForce: (s) => process.exit(exitCodeFor(s)) });
// Stands in for the servers and watches that keep a real component's event loop busy.
const busy = setInterval(() => {}, 1_000);
console.log("ready");
await new Promise((r) => signal.addEventListener("abort", r));
console.log("draining");
await new Promise((r) => setTimeout(r, Number(process.env.DRAIN_MS)));
console.log("drained");
clearInterval(busy);
dispose();
`,
  );

  /** Starts the entry point; resolves output and exit code once it exits. */
  function launch(drainMs: number) {
    const child = spawn(process.execPath, ["--import", "tsx", script], {
      cwd: resolve(import.meta.dirname, ".."),
      env: { ...process.env, DRAIN_MS: String(drainMs), SKEIN_LOG_LEVEL: "silent" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const exit = new Promise<{ code: number | null; out: string }>((res) =>
      child.on("close", (code) => res({ code, out })),
    );
    const seen = async (text: string) => {
      while (!out.includes(text)) {
        const exited = await Promise.race([
          exit.then(() => true),
          new Promise((r) => setTimeout(r, 20, false)),
        ]);
        if (exited && !out.includes(text))
          throw new Error(`entry point exited before printing ${text}: ${out}`);
      }
    };
    return { child, seen, exit };
  }

  it("finishes in-flight work on SIGTERM and exits cleanly", async () => {
    const p = launch(300);
    try {
      await p.seen("ready");
      p.child.kill("SIGTERM");
      const { code, out } = await p.exit;
      expect(out).toBe("ready\ndraining\ndrained\n");
      expect(code).toBe(0);
    } finally {
      p.child.kill("SIGKILL");
    }
  });

  it("exits at once on a second signal", async () => {
    const p = launch(60_000);
    try {
      await p.seen("ready");
      p.child.kill("SIGTERM");
      await p.seen("draining");
      const started = Date.now();
      p.child.kill("SIGTERM");
      const { code, out } = await p.exit;
      expect(code).toBe(143);
      expect(out).not.toContain("drained");
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      p.child.kill("SIGKILL");
    }
  });
});
