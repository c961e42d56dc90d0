/**
 * The plugin driven as a real process against real namespaces: a "node"
 * namespace holding the skein0 bridge (set up here as the agent would), and
 * pod namespaces for the plugin to wire.
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNetns, createPod, type Netns } from "../../test/fixtures/netns.ts";
import { type NodeSettings, writeSettings } from "../settings.ts";
import { invoke, linkNames, makeBridge } from "./testdata/invoke.ts";

const SETTINGS: NodeSettings = {
  version: 1,
  network: "skein",
  networkCIDR: "10.32.0.0/16",
  blockCIDR: "10.32.1.0/24",
  gateway: "10.32.1.1",
  mtu: 1400,
  bridge: "skein0",
};

let node: Netns;
let dir: string;
let settingsFile: string;
let dataDir: string;
let conf: Record<string, unknown>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "skein-cni-"));
  settingsFile = join(dir, "run", "network.json");
  dataDir = join(dir, "ipam");
  conf = { cniVersion: "1.1.0", name: "skein", type: "skein", settingsFile, dataDir };
  node = await createNetns("n");
  await makeBridge(node, "skein0", "10.32.1.1/16");
  await writeSettings(SETTINGS, settingsFile);
});

afterAll(async () => {
  await node?.destroy();
  await rm(dir, { recursive: true, force: true });
});

function env(
  command: string,
  pod?: Netns,
  containerID = pod?.name ?? "none",
  ifname = "eth0",
): Record<string, string> {
  const e: Record<string, string> = {
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerID,
    CNI_IFNAME: ifname,
    CNI_PATH: "/opt/cni/bin",
  };
  if (pod) e.CNI_NETNS = pod.path;
  return e;
}

async function records(): Promise<string[]> {
  return (await readdir(join(dataDir, "skein")).catch(() => [] as string[]))
    .filter((n) => /^\d/.test(n))
    .sort();
}

async function withPods(count: number, fn: (pods: Netns[]) => Promise<void>): Promise<void> {
  const pods: Netns[] = [];
  try {
    for (let i = 0; i < count; i++) pods.push(await createPod());
    await fn(pods);
  } finally {
    for (const pod of pods) {
      await invoke(node, env("DEL", pod), conf).catch(() => undefined);
      await pod.destroy();
    }
  }
}

describe("skein CNI plugin", () => {
  it("STATUS reports not available (50) until the agent has written the settings, then ready", async () => {
    const later = { ...conf, settingsFile: join(dir, "later", "network.json") };
    const before = await invoke(node, { CNI_COMMAND: "STATUS" }, later);
    expect(before.exitCode).not.toBe(0);
    expect(before.json).toMatchObject({ cniVersion: "1.1.0", code: 50, msg: "plugin not available" });

    await withPods(1, async ([pod]) => {
      const early = await invoke(node, env("ADD", pod), later);
      expect(early.json).toMatchObject({ code: 11, msg: "the node network is not ready yet" });
      expect(await linkNames(node)).toEqual(["lo", "skein0"]);
      expect(await records()).toEqual([]);
    });

    await writeSettings(SETTINGS, later.settingsFile);
    expect(await invoke(node, { CNI_COMMAND: "STATUS" }, later)).toEqual({ exitCode: 0, stdout: "" });
  });

  it("ADD wires two pods onto one segment: they reach each other and the gateway; CHECK passes", async () => {
    await withPods(2, async ([a, b]) => {
      const ra = await invoke(node, env("ADD", a), conf);
      const rb = await invoke(node, env("ADD", b), conf);
      expect(ra.exitCode, ra.stdout).toBe(0);
      expect(rb.exitCode, rb.stdout).toBe(0);
      const result = ra.json as {
        interfaces: { name: string; sandbox?: string; mtu?: number; mac?: string }[];
        ips: { address: string; gateway: string; interface: number }[];
        routes: unknown[];
      };
      expect(result.interfaces[1]).toMatchObject({ name: "eth0", sandbox: a!.path, mtu: 1400 });
      expect(result.interfaces[0]?.name).toMatch(/^sk[0-9a-f]{12}$/);
      expect(result.ips).toEqual([
        { address: expect.stringMatching(/^10\.32\.1\.\d+\/16$/), gateway: "10.32.1.1", interface: 1 },
      ]);
      expect(result.routes).toEqual([{ dst: "0.0.0.0/0", gw: "10.32.1.1" }]);

      const addrA = result.ips[0]!.address.split("/")[0]!;
      const addrB = (rb.json as typeof result).ips[0]!.address.split("/")[0]!;
      expect(addrA).not.toBe(addrB);
      await a!.exec(["ping", "-c1", "-W2", addrB]);
      await b!.exec(["ping", "-c1", "-W2", addrA]);
      await a!.exec(["ping", "-c1", "-W2", "10.32.1.1"]);
      // Full-MTU frame, fragmentation forbidden: the MTU on both ends matches.
      await a!.exec(["ping", "-c1", "-W2", "-M", "do", "-s", String(1400 - 28), addrB]);

      const check = await invoke(node, env("CHECK", a), { ...conf, prevResult: ra.json });
      expect(check).toEqual({ exitCode: 0, stdout: "" });

      // Someone removes the pod's address by hand: CHECK must notice.
      await a!.exec(["ip", "addr", "flush", "dev", "eth0"]);
      const broken = await invoke(node, env("CHECK", a), { ...conf, prevResult: ra.json });
      expect(broken.json).toMatchObject({
        code: 102,
        details: expect.stringMatching(/address .* is missing on eth0/),
      });
    });
  });

  it("ADD refuses an interface name the pod already has, and changes nothing", async () => {
    await withPods(1, async ([pod]) => {
      const first = await invoke(node, env("ADD", pod), conf);
      expect(first.exitCode, first.stdout).toBe(0);
      const links = await linkNames(node);
      const before = await records();
      const again = await invoke(node, env("ADD", pod, "other-container"), conf);
      expect(again.json).toMatchObject({ code: 101, msg: "interface already exists in the container" });
      expect(await linkNames(node)).toEqual(links);
      expect(await records()).toEqual(before);
      expect((await invoke(node, env("CHECK", pod), { ...conf, prevResult: first.json })).exitCode).toBe(0);
    });
  });

  it("DEL removes the link and frees the address, and a second DEL is fine", async () => {
    await withPods(1, async ([pod]) => {
      const before = await records();
      expect((await invoke(node, env("ADD", pod), conf)).exitCode).toBe(0);
      expect((await records()).length).toBe(before.length + 1);
      expect(await invoke(node, env("DEL", pod), conf)).toEqual({ exitCode: 0, stdout: "" });
      expect(await invoke(node, env("DEL", pod), conf)).toEqual({ exitCode: 0, stdout: "" });
      expect(await records()).toEqual(before);
      expect(await linkNames(node)).toEqual(["lo", "skein0"]);
      expect(await linkNames(pod!)).toEqual(["lo"]);
    });
  });

  it("DEL succeeds when the pod's namespace is already gone, without CNI_NETNS too", async () => {
    const pod = await createPod();
    let destroyed = false;
    try {
      expect((await invoke(node, env("ADD", pod), conf)).exitCode).toBe(0);
      await pod.destroy();
      destroyed = true;
      expect((await invoke(node, env("DEL", pod), conf)).exitCode).toBe(0);
      const { CNI_NETNS: _, ...withoutNetns } = env("DEL", pod);
      expect((await invoke(node, withoutNetns, conf)).exitCode).toBe(0);
      expect(await records()).toEqual([]);
    } finally {
      if (!destroyed) await pod.destroy();
    }
  });

  it("GC frees addresses and host links of attachments the runtime no longer lists", async () => {
    await withPods(2, async ([keep, leak]) => {
      const kept = await invoke(node, env("ADD", keep), conf);
      expect((await invoke(node, env("ADD", leak), conf)).exitCode).toBe(0);
      expect(await records()).toHaveLength(2);
      const out = await invoke(
        node,
        { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" },
        {
          ...conf,
          "cni.dev/valid-attachments": [{ containerID: keep!.name, ifname: "eth0" }],
        },
      );
      expect(out).toEqual({ exitCode: 0, stdout: "" });
      expect(await records()).toEqual([
        (kept.json as { ips: { address: string }[] }).ips[0]!.address.split("/")[0],
      ]);
      expect(await linkNames(leak!)).toEqual(["lo"]);
      expect((await invoke(node, env("CHECK", keep), { ...conf, prevResult: kept.json })).exitCode).toBe(0);
    });
  });

  it("answers 0.4.0 callers in 0.4.0 form", async () => {
    await withPods(1, async ([pod]) => {
      const out = await invoke(node, env("ADD", pod), { ...conf, cniVersion: "0.4.0" });
      expect(out.json).toMatchObject({ cniVersion: "0.4.0", ips: [{ version: "4", interface: 1 }] });
      expect((out.json as { interfaces: object[] }).interfaces[1]).not.toHaveProperty("mtu");
    });
  });

  it("VERSION lists the supported versions", async () => {
    const out = await invoke(node, { CNI_COMMAND: "VERSION" }, { cniVersion: "1.0.0" });
    expect(out.json).toEqual({ cniVersion: "1.0.0", supportedVersions: ["0.4.0", "1.0.0", "1.1.0"] });
  });

  describe("bad input gets the spec's code and changes nothing", () => {
    it.each<
      [string, (pod: Netns) => Record<string, string>, (c: Record<string, unknown>) => unknown, number]
    >([
      ["stdin that is not JSON", (p) => env("ADD", p), () => "{not json", 6],
      ["an unsupported cniVersion", (p) => env("ADD", p), (c) => ({ ...c, cniVersion: "0.3.1" }), 1],
      ["a network this node does not serve", (p) => env("ADD", p), (c) => ({ ...c, name: "elsewhere" }), 7],
      ["another plugin type", (p) => env("ADD", p), (c) => ({ ...c, type: "bridge" }), 7],
      ["an ipam section", (p) => env("ADD", p), (c) => ({ ...c, ipam: { type: "host-local" } }), 2],
      [
        "a missing CNI_IFNAME",
        (p) => ({ CNI_COMMAND: "ADD", CNI_CONTAINERID: "c1", CNI_NETNS: p.path }),
        (c) => c,
        4,
      ],
      ["a hostile container ID", (p) => env("ADD", p, "../../etc/passwd"), (c) => c, 4],
      [
        "a namespace path that does not exist",
        () => ({ ...env("ADD", undefined, "c1"), CNI_NETNS: "/run/netns/sktcni-none" }),
        (c) => c,
        3,
      ],
      [
        "a namespace path that is a regular file",
        () => ({ ...env("ADD", undefined, "c1"), CNI_NETNS: "/etc/hostname" }),
        (c) => c,
        4,
      ],
      [
        "the plugin's own namespace",
        () => ({ ...env("ADD", undefined, "c1"), CNI_NETNS: node.path }),
        (c) => c,
        4,
      ],
      [
        "a namespace of another kind",
        () => ({ ...env("ADD", undefined, "c1"), CNI_NETNS: "/proc/1/ns/mnt" }),
        (c) => c,
        4,
      ],
      [
        "a missing settings file",
        (p) => env("ADD", p),
        (c) => ({ ...c, settingsFile: "/run/skein-test-none.json" }),
        11,
      ],
    ])("%s", async (_what, makeEnv, makeConf, code) => {
      await withPods(1, async ([pod]) => {
        const linksBefore = await linkNames(node);
        const recordsBefore = await records();
        const out = await invoke(node, makeEnv(pod!), makeConf(conf));
        expect(out.exitCode).not.toBe(0);
        expect(out.json).toMatchObject({ code, msg: expect.any(String) });
        expect(await linkNames(node)).toEqual(linksBefore);
        expect(await linkNames(pod!)).toEqual(["lo"]);
        expect(await records()).toEqual(recordsBefore);
      });
    });

    it("an exhausted block gets code 100 and leaves no half-made link", async () => {
      const small = join(dir, "small.json");
      await writeSettings({ ...SETTINGS, blockCIDR: "10.32.9.0/30", gateway: "10.32.9.1" }, small);
      const smallConf = { ...conf, settingsFile: small, dataDir: join(dir, "small-ipam") };
      await withPods(2, async ([a, b]) => {
        expect((await invoke(node, env("ADD", a), smallConf)).json).toMatchObject({
          ips: [{ address: "10.32.9.2/16" }],
        });
        const links = await linkNames(node);
        const full = await invoke(node, env("ADD", b), smallConf);
        expect(full.json).toMatchObject({ code: 100, details: expect.stringMatching(/10\.32\.9\.0\/30/) });
        expect(await linkNames(node)).toEqual(links);
        const status = await invoke(node, { CNI_COMMAND: "STATUS" }, smallConf);
        expect(status.json).toMatchObject({ code: 50 });
        await invoke(node, env("DEL", a), smallConf);
      });
    });
  });

  it("STATUS reports limited connectivity (51) when the bridge has vanished, and ADD says try again later", async () => {
    await node.exec(["ip", "link", "del", "skein0"]);
    try {
      expect((await invoke(node, { CNI_COMMAND: "STATUS" }, conf)).json).toMatchObject({ code: 51 });
      await withPods(1, async ([pod]) => {
        const out = await invoke(node, env("ADD", pod), conf);
        expect(out.json).toMatchObject({
          code: 11,
          details: expect.stringMatching(/bridge skein0 does not exist/),
        });
        expect(await records()).toEqual([]);
      });
    } finally {
      await makeBridge(node, "skein0", "10.32.1.1/16");
    }
  });
});
