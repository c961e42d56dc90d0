/**
 * Once per test run: the real parts every suite shares (the zfs-fuse daemon,
 * etcd + kube-apiserver), and a sweep for what tests left behind. A test that
 * leaks a namespace or a pool fails the run here, after it has been cleaned.
 */

import { readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { TestProject } from "vitest/node";
import { run } from "../kit/exec.ts";
import { startApiServer } from "./fixtures/apiserver.ts";
import { deleteNetns } from "./fixtures/netns.ts";
import { destroyPool } from "./fixtures/pool.ts";
import { isRunning } from "./fixtures/process.ts";
import { SCRATCH_DIR } from "./fixtures/scratch.ts";
import { daemonAnswers, ensureZfsDaemon } from "./fixtures/zfs-daemon.ts";

const FIXTURE_NAME = /^skt(\d+)[a-z]+\d+$/;

/** Fixture-made namespaces and pools whose creating process is gone. */
async function leftovers(): Promise<{ namespaces: string[]; pools: string[] }> {
  const ns = await run(["ip", "netns", "list"]).then(
    (r) => r.stdout,
    () => "",
  );
  const pools = await run(["zpool", "list", "-H", "-o", "name"]).then(
    (r) => r.stdout,
    () => "",
  );
  const orphan = (name: string) => {
    const m = FIXTURE_NAME.exec(name);
    return m !== null && !isRunning(Number(m[1]));
  };
  return {
    namespaces: ns
      .split("\n")
      .map((l) => l.split(" ")[0] ?? "")
      .filter(orphan),
    pools: pools.split("\n").filter(orphan),
  };
}

/** The sparse file and mountpoint folder of a pool made by pool.ts. */
function removePoolFiles(pool: string): void {
  for (const entry of readdirSync(tmpdir())) {
    if (entry.startsWith(`skein-pool-${pool}-`))
      rmSync(join(tmpdir(), entry), { recursive: true, force: true });
  }
}

/** The scratch folders (names) whose creating process is gone. */
function orphanScratchDirs(): string[] {
  return readdirSync(tmpdir()).filter((entry) => {
    const m = SCRATCH_DIR.exec(entry);
    return m !== null && !isRunning(Number(m[2]));
  });
}

/**
 * Processes started from an orphaned scratch folder (etcd, kube-apiserver,
 * socat, agents of a runner killed before its teardown): killed, their mounts
 * under the folder taken off, and the folder removed.
 */
async function sweepScratch(): Promise<string[]> {
  const dirs = orphanScratchDirs();
  if (dirs.length === 0) return [];
  const paths = dirs.map((d) => join(tmpdir(), d));
  const killed: string[] = [];
  for (const entry of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (!paths.some((p) => cmdline.includes(`${p}/`))) continue;
    try {
      process.kill(Number(entry), "SIGKILL");
      killed.push(`process ${entry} (${cmdline.split("\0").slice(0, 2).join(" ")})`);
    } catch {
      // Gone already.
    }
  }
  if (killed.length > 0) await sleep(500);
  const mounts = await run(["findmnt", "--list", "--noheadings", "--output", "TARGET"]).then(
    (r) => r.stdout.split("\n"),
    () => [],
  );
  for (const target of mounts.filter((t) => paths.some((p) => t.startsWith(`${p}/`))).reverse())
    await run(["umount", "-l", target]).catch(() => undefined);
  for (const p of paths) rmSync(p, { recursive: true, force: true });
  return [...killed, ...dirs.map((d) => `folder ${d}`)];
}

/** Removes orphaned fixtures; returns what it found, and what it could not remove. */
async function sweep(): Promise<{ found: string[]; stuck: string[] }> {
  const processes = await sweepScratch();
  const { namespaces, pools } = await leftovers();
  const stuck: string[] = [];
  for (const p of pools) {
    await destroyPool(p).then(
      () => removePoolFiles(p),
      (err: unknown) => stuck.push(`pool ${p} (${err})`),
    );
  }
  for (const n of namespaces)
    await deleteNetns(n).catch((err: unknown) => stuck.push(`namespace ${n} (${err})`));
  return {
    found: [...processes, ...pools.map((p) => `pool ${p}`), ...namespaces.map((n) => `namespace ${n}`)],
    stuck,
  };
}

export default async function setup(project: TestProject) {
  if (process.getuid?.() !== 0) {
    throw new Error("Skein's tests drive real ZFS pools and network namespaces and must run as root");
  }
  const stopZfs = await ensureZfsDaemon();
  // An earlier run's leftovers are that run's fault: clean what can be cleaned, never refuse to test.
  const stale = await sweep();
  if (stale.found.length)
    console.warn(`global-setup: leftovers of an earlier run: ${stale.found.join(", ")}`);
  if (stale.stuck.length) console.warn(`global-setup: could not remove: ${stale.stuck.join(", ")}`);
  const api = await startApiServer().catch(async (err: unknown) => {
    await stopZfs();
    throw err;
  });
  project.provide("apiServer", {
    dir: api.dir,
    url: api.url,
    kubeconfigPath: api.kubeconfigPath,
    socketPath: api.socketPath,
    caCertPath: api.caCertPath,
    adminCertPath: api.adminCertPath,
    adminKeyPath: api.adminKeyPath,
  });
  return async () => {
    // A daemon that died mid-run explains every zpool/zfs failure after it: say so first.
    if (!(await daemonAnswers()))
      console.error(
        "global-setup: the zfs-fuse daemon stopped answering during the run (it crashed or was killed); ZFS failures after that are its consequence",
      );
    await api.stop();
    const swept = await sweep();
    await stopZfs();
    // What an earlier run left and could not be removed at the start is not this run's leak.
    const earlier = new Set(stale.found);
    const leaked = swept.found.filter((f) => !earlier.has(f));
    if (leaked.length) {
      const what = swept.stuck.length ? `; could not remove: ${swept.stuck.join(", ")}` : " (now removed)";
      throw new Error(
        `tests left these behind${what}; the test that made them is broken: ${leaked.join(", ")}`,
      );
    }
  };
}
