import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { run } from "../../kit/exec.ts";
import * as ipv4 from "../../kit/ipv4.ts";
import { CniError } from "./errors.ts";
import { AddressStore } from "./ipam.ts";
import { holderIdentity, withLock } from "./lock.ts";

const HELPER = join(import.meta.dirname, "testdata", "allocate.ts");
const att = (containerID: string, ifname = "eth0") => ({ containerID, ifname });

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "skein-ipam-"));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("AddressStore", () => {
  const block = ipv4.parseCidr("10.32.1.0/29"); // .1-.6 usable, .1 is the gateway
  const gateway = ipv4.parseAddress("10.32.1.1");

  it("hands out addresses round-robin, skipping the network, gateway and broadcast addresses", async () => {
    const store = new AddressStore(dataDir, "skein");
    const got: string[] = [];
    for (const id of ["a", "b", "c", "d", "e"])
      got.push((await store.allocate(att(id), block, [gateway])).address);
    expect(got).toEqual(["10.32.1.2", "10.32.1.3", "10.32.1.4", "10.32.1.5", "10.32.1.6"]);
  });

  it("records the owner in a file named by the address", async () => {
    const store = new AddressStore(dataDir, "skein");
    await store.allocate(att("c1", "net1"), block, [gateway]);
    expect(JSON.parse(await readFile(join(dataDir, "skein", "10.32.1.2"), "utf8"))).toEqual({
      containerID: "c1",
      ifname: "net1",
    });
  });

  it("gives a repeated ADD the address it already holds", async () => {
    const store = new AddressStore(dataDir, "skein");
    expect(await store.allocate(att("a"), block, [gateway])).toEqual({ address: "10.32.1.2", fresh: true });
    expect(await store.allocate(att("a"), block, [gateway])).toEqual({ address: "10.32.1.2", fresh: false });
    expect(await store.allocate(att("a", "net1"), block, [gateway])).toEqual({
      address: "10.32.1.3",
      fresh: true,
    });
  });

  it("says which block is exhausted and what to do, with the plugin's code 100", async () => {
    const store = new AddressStore(dataDir, "skein");
    for (const id of ["a", "b", "c", "d", "e"]) await store.allocate(att(id), block, [gateway]);
    const err = await store.allocate(att("f"), block, [gateway]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).cniCode).toBe(100);
    expect((err as CniError).message).toMatch(/all 5 addresses of 10.32.1.0\/29 are allocated/);
    expect(await store.list()).toHaveLength(5);
  });

  it("releases idempotently, and does not reuse a freed address at once", async () => {
    const store = new AddressStore(dataDir, "skein");
    await store.allocate(att("a"), block, [gateway]);
    await store.allocate(att("b"), block, [gateway]);
    expect(await store.release(att("a"))).toEqual(["10.32.1.2"]);
    expect(await store.release(att("a"))).toEqual([]);
    expect((await store.allocate(att("c"), block, [gateway])).address).toBe("10.32.1.4");
    expect(await store.find(att("a"))).toBeUndefined();
    expect(await store.find(att("b"))).toBe("10.32.1.3");
  });

  it("releases nothing, and creates nothing, on a network that never allocated", async () => {
    const store = new AddressStore(dataDir, "other");
    expect(await store.release(att("a"))).toEqual([]);
    expect(await readdir(dataDir)).toEqual([]);
  });

  it("survives a new store on the same directory (a reboot or a new plugin process)", async () => {
    await new AddressStore(dataDir, "skein").allocate(att("a"), block, [gateway]);
    const again = new AddressStore(dataDir, "skein");
    expect(await again.find(att("a"))).toBe("10.32.1.2");
    expect((await again.allocate(att("b"), block, [gateway])).address).toBe("10.32.1.3");
  });

  it("GC frees the addresses of attachments the runtime no longer lists", async () => {
    const store = new AddressStore(dataDir, "skein");
    for (const id of ["a", "b", "c"]) await store.allocate(att(id), block, [gateway]);
    expect((await store.collect([att("b")])).sort()).toEqual(["10.32.1.2", "10.32.1.4"]);
    expect((await store.list()).map((r) => r.attachment.containerID)).toEqual(["b"]);
  });

  it("GC removes temp files a crashed plugin left behind, but not fresh ones", async () => {
    const store = new AddressStore(dataDir, "skein");
    await store.allocate(att("a"), block, [gateway]);
    const old = join(store.dir, ".10.32.1.9.123.abcd.tmp");
    const fresh = join(store.dir, ".10.32.1.8.123.abce.tmp");
    await writeFile(old, "{}");
    await writeFile(fresh, "{}");
    await run(["touch", "-d", "2 minutes ago", old]);
    await store.collect([att("a")]);
    expect((await readdir(store.dir)).sort()).toEqual([
      ".10.32.1.8.123.abce.tmp",
      "10.32.1.2",
      "last_reserved",
    ]);
  });

  it("gives 100 concurrent allocating processes 100 different addresses, past a stale lock", async () => {
    const big = "10.32.4.0/24";
    // A plugin killed while holding the lock: the racers must break it, once.
    await mkdir(join(dataDir, "skein"));
    await writeFile(join(dataDir, "skein", "lock"), `${await deadPid()} 1 ${await bootId()}\n`);
    const outputs = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        run(["node", "--import", "tsx", HELPER, dataDir, "skein", big, "10.32.4.1", `pod-${i}`], {
          timeoutMs: 110_000,
        }),
      ),
    );
    const addresses = outputs.map((o) => o.stdout.trim());
    expect(new Set(addresses).size).toBe(100);
    for (const a of addresses) {
      expect(ipv4.contains(ipv4.parseCidr(big), ipv4.parseAddress(a))).toBe(true);
      expect(["10.32.4.0", "10.32.4.1", "10.32.4.255"]).not.toContain(a);
    }
    const store = new AddressStore(dataDir, "skein");
    expect(await store.list()).toHaveLength(100);
    expect((await readdir(store.dir)).filter((n) => n.startsWith("lock") || n.endsWith(".tmp"))).toEqual([]);
  }, 120_000);
});

async function deadPid(): Promise<number> {
  const { stdout } = await run(["sh", "-c", "echo $$"]);
  return Number(stdout.trim());
}

async function bootId(): Promise<string> {
  return (await readFile("/proc/sys/kernel/random/boot_id", "utf8")).trim();
}

describe("withLock", () => {
  it("breaks a lock whose holder has exited", async () => {
    const path = join(dataDir, "lock");
    await writeFile(path, `${await deadPid()} 12345 ${await bootId()}\n`);
    expect(await withLock(path, () => "ran")).toBe("ran");
    expect(await readdir(dataDir)).toEqual([]);
  });

  it("breaks a lock taken before the last reboot, even if the pid is alive now", async () => {
    const path = join(dataDir, "lock");
    await writeFile(path, `1 1 00000000-0000-0000-0000-000000000000\n`);
    expect(await withLock(path, () => "ran")).toBe("ran");
  });

  it("breaks a lock whose pid now names a younger process", async () => {
    const path = join(dataDir, "lock");
    await writeFile(path, `${process.pid} 1 ${await bootId()}\n`);
    expect(await withLock(path, () => "ran")).toBe("ran");
  });

  it("waits for a live holder, says try again later (11) if it does not let go, and gets in once it dies", async () => {
    const path = join(dataDir, "lock");
    const holder = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      await writeFile(path, holderIdentity(holder.pid!));
      const err = await withLock(path, () => "never", { timeoutMs: 300 }).catch((e: unknown) => e);
      expect((err as CniError).cniCode).toBe(11);
      expect((err as CniError).message).toMatch(/address store is busy.*held by: \d+/);
      expect(await readFile(path, "utf8")).toBe(holderIdentity(holder.pid!));

      const waiter = withLock(path, () => "got it", { timeoutMs: 10_000 });
      holder.kill("SIGKILL");
      expect(await waiter).toBe("got it");
      expect(await readdir(dataDir)).toEqual([]);
    } finally {
      holder.kill("SIGKILL");
    }
  });
});
