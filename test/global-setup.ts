/**
 * Once per test run: the real parts every suite shares (the zfs-fuse daemon,
 * etcd + kube-apiserver), and a sweep for what tests left behind. A test that
 * leaks a namespace or a pool fails the run here, after it has been cleaned.
 */

import type { TestProject } from "vitest/node";
import { run } from "../kit/exec.ts";
import { startApiServer } from "./fixtures/apiserver.ts";
import { deleteNetns } from "./fixtures/netns.ts";
import { destroyPool } from "./fixtures/pool.ts";
import { ensureZfsDaemon } from "./fixtures/zfs-daemon.ts";

const FIXTURE_NAME = /^skt(\d+)[a-z]+\d+$/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

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
    return m !== null && !alive(Number(m[1]));
  };
  return {
    namespaces: ns
      .split("\n")
      .map((l) => l.split(" ")[0] ?? "")
      .filter(orphan),
    pools: pools.split("\n").filter(orphan),
  };
}

async function sweep(): Promise<string[]> {
  const { namespaces, pools } = await leftovers();
  for (const p of pools) await destroyPool(p);
  for (const n of namespaces) await deleteNetns(n);
  return [...pools.map((p) => `pool ${p}`), ...namespaces.map((n) => `namespace ${n}`)];
}

export default async function setup(project: TestProject) {
  if (process.getuid?.() !== 0) {
    throw new Error("Skein's tests drive real ZFS pools and network namespaces and must run as root");
  }
  const stopZfs = await ensureZfsDaemon();
  const stale = await sweep();
  if (stale.length) console.warn(`global-setup: removed leftovers of an earlier run: ${stale.join(", ")}`);
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
    await api.stop();
    const leaked = await sweep();
    await stopZfs();
    if (leaked.length) {
      throw new Error(
        `tests left these behind (now removed; the test that made them is broken): ${leaked.join(", ")}`,
      );
    }
  };
}
