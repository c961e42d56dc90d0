/**
 * `skein dns --workers N` as a real process tree: the workers answer on one
 * shared port, the primary serves their aggregated metrics, and SIGTERM leaves
 * no worker behind; workers that cannot listen fail the start, leaving none.
 * A supervised `skein dns` (on Node, and the Bun-compiled program) speaks the
 * IPC protocol and stops when its supervisor goes.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { run } from "../../kit/exec.ts";
import { eventually } from "../../kit/k8s/testing.ts";
import { freePort } from "../../test/fixtures/apiserver.ts";
import { startProcess } from "../../test/fixtures/process.ts";
import { sharedApiServer } from "../../test/fixtures/shared.ts";
import { buildDnsExecutable } from "./testing.ts";

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe("skein dns --workers", () => {
  const api = sharedApiServer();
  const dir = mkdtempSync(join(tmpdir(), "skein-dns-workers-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  /** `skein dns` with two workers and no probes, on no network's records, plus `args`. */
  const skeinDnsWorkers = (...args: string[]): [string, ...string[]] => [
    process.execPath,
    "--import",
    "tsx",
    "cmd/skein.ts",
    "dns",
    `--kubeconfig=${api.kubeconfigPath}`,
    `--network=skt${process.pid}-none`,
    "--no-probes",
    "--workers=2",
    ...args,
  ];

  it("answers from two workers on one port, aggregates their metrics, and stops them all on SIGTERM", async () => {
    const [port, metricsPort] = [await freePort(), await freePort()];
    const dns = startProcess(
      "skein dns --workers 2",
      skeinDnsWorkers(`--listen=127.0.0.1:${port}`, `--metrics-address=127.0.0.1:${metricsPort}`),
      join(dir, "dns.log"),
    );
    try {
      await eventually(
        "both workers ready",
        async () => (await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).ok,
        60_000,
      );
      const workers = children(dns.pid);
      expect(workers).toHaveLength(2);
      for (let i = 0; i < 20; i++) {
        const { stdout } = await run([
          "dig",
          "+time=2",
          "+tries=1",
          "-p",
          String(port),
          "@127.0.0.1",
          `nobody-${i}.skein.local`,
        ]);
        expect(stdout).toContain("status: NXDOMAIN");
      }
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const queries = [...metrics.matchAll(/^skein_dns_queries_total\{[^}]*\} (\d+)/gm)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
      expect(queries).toBeGreaterThanOrEqual(20);
      dns.kill("SIGTERM");
      await eventually("the primary to exit", async () => dns.exited(), 15_000);
      for (const pid of workers) expect(() => process.kill(pid, 0)).toThrow();
    } finally {
      await dns.stop();
    }
  });

  it("fails, leaving no worker behind, when the workers cannot listen", async () => {
    const dns = startProcess(
      "skein dns --workers 2 on a foreign address",
      // TEST-NET-1: on no interface of this machine.
      skeinDnsWorkers("--listen=192.0.2.1:5399"),
      join(dir, "dns-bad.log"),
    );
    try {
      const workers = await eventually("two workers forked", async () => {
        const pids = children(dns.pid);
        return pids.length === 2 ? pids : undefined;
      });
      await eventually("the primary to give up", async () => dns.exited(), 60_000);
      for (const pid of workers) expect(() => process.kill(pid, 0)).toThrow();
      const log = readFileSync(join(dir, "dns-bad.log"), "utf8");
      expect(log).toMatch(/cannot listen for DNS on udp 192\.0\.2\.1:5399/);
      expect(log).toMatch(/DNS worker \d exited while starting/);
    } finally {
      await dns.stop();
    }
  });

  it.each([
    ["skein dns on Node, with workers", () => skeinDnsWorkers()],
    [
      "the Bun-compiled DNS program",
      async () => [await buildDnsExecutable(dir), `--kubeconfig=${api.kubeconfigPath}`, "--no-probes"],
    ],
  ])("%s: says it is ready, reports metrics, and stops when its supervisor is gone", async (_what, argv) => {
    const [program, ...args] = (await argv()) as [string, ...string[]];
    const port = await freePort();
    const child = spawn(program, [...args, `--listen=127.0.0.1:${port}`], {
      stdio: ["ignore", "ignore", "ignore", "ipc"],
      serialization: "json",
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    try {
      const messages: unknown[] = [];
      child.on("message", (m) => messages.push(m));
      await eventually(
        "ready",
        async () => messages.some((m) => (m as { skeinDns?: string }).skeinDns === "ready"),
        60_000,
      );
      child.send({ skeinDns: "metrics", id: 7 });
      const reply = (await eventually("a metrics reply", async () =>
        messages.find((m) => (m as { id?: number }).id === 7),
      )) as { metrics: { name: string }[] };
      expect(reply.metrics.map((m) => m.name)).toContain("skein_dns_queries_total");
      // What a supervisor killed with SIGKILL leaves: the channel closes.
      child.disconnect();
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      expect(child.exitCode ?? child.signalCode).not.toBeNull();
      expect(children(child.pid!)).toEqual([]);
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
  });
});
