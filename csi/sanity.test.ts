/**
 * The acceptance test: the official csi-sanity suite against `skein
 * csi-controller` + `skein csi-node` as real processes, the agent on a
 * zfs-fuse pool, and a real API server of its own (so no other test's
 * volumes change the counts the suite checks).
 *
 * Skipped by csi-sanity itself, because Skein does not claim them:
 * NodeStage/Unstage (no STAGE_UNSTAGE_VOLUME), ModifyVolume (no
 * MODIFY_VOLUME), "already published but incompatible" (no PUBLISH_READONLY),
 * the node attach limit (not enabled), and group snapshots.
 */
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyCrds } from "../api/v1alpha1/install.ts";
import { run } from "../kit/exec.ts";
import { type ApiServer, startApiServer } from "../test/fixtures/apiserver.ts";
import { createPool, type Pool } from "../test/fixtures/pool.ts";
import { toolPath } from "../test/fixtures/tools.ts";
import { type DriverProcesses, startDriver } from "./testing/driver-processes.ts";

const MiB = 1024 * 1024;

describe("csi-sanity", () => {
  let api: ApiServer;
  let pool: Pool;
  let driver: DriverProcesses;

  beforeAll(async () => {
    api = await startApiServer();
    await applyCrds(api.kubeConfig());
    pool = await createPool({ sizeMiB: 512 });
    driver = await startDriver({
      kubeconfigPath: api.kubeconfigPath,
      pool: pool.name,
      node: "sanity-node",
      cluster: "sanity",
    });
  });

  afterAll(async () => {
    if (process.env.SKEIN_KEEP_LOGS)
      await run(["cp", "-r", driver.dir, process.env.SKEIN_KEEP_LOGS]).catch(() => undefined);
    await driver?.stop();
    await pool?.destroy();
    await api?.stop();
  });

  it("passes in full", { timeout: 900_000 }, async () => {
    const mountDir = join(driver.dir, "sanity");
    mkdirSync(mountDir);
    const argv = [
      toolPath("csi-sanity"),
      `--csi.endpoint=${driver.nodeEndpoint}`,
      `--csi.controllerendpoint=${driver.controllerEndpoint}`,
      `--csi.mountdir=${join(mountDir, "mount")}`,
      `--csi.stagingdir=${join(mountDir, "staging")}`,
      `--csi.testvolumesize=${16 * MiB}`,
      `--csi.testvolumeexpandsize=${32 * MiB}`,
      "--ginkgo.v",
      "--ginkgo.no-color",
    ] as const;
    const logPath = join(driver.dir, "csi-sanity.log");
    const code = await runToFile(argv, logPath);
    const output = readFileSync(logPath, "utf8");
    const failures = output.split("\n").filter((l) => l.includes("[FAIL]"));
    expect(code, `csi-sanity failed (${logPath}):\n${failures.join("\n")}\n${tail(output, 120)}`).toBe(0);
    const summary =
      /Ran (\d+) of (\d+) Specs.*\n.*SUCCESS! -- (\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped/.exec(
        output,
      );
    expect(summary, tail(output, 80)).not.toBeNull();
    expect(Number(summary?.[4])).toBe(0);
    // Everything that ran passed; what was skipped is listed at the top of this file.
    expect(Number(summary?.[3])).toBeGreaterThan(50);
  });
});

/** Runs a program with its output in a file (csi-sanity's report is long), resolving with the exit code. */
function runToFile(argv: readonly string[], logPath: string): Promise<number | null> {
  const [program = "", ...args] = argv;
  const fd = openSync(logPath, "w");
  try {
    const child = spawn(program, args, { stdio: ["ignore", fd, fd] });
    return new Promise((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code) => resolve(code));
    });
  } finally {
    closeSync(fd);
  }
}

function tail(text: string, lines: number): string {
  return text.split("\n").slice(-lines).join("\n");
}
