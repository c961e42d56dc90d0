/**
 * The plugin driven by libcni through `cnitool`, as a runtime drives it: the
 * whole lifecycle on a 1.1.0 configuration, and chained before the reference
 * `portmap` plugin (Debian's, which speaks CNI up to 1.0.0, so that chain's
 * configuration says 1.0.0).
 */
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../../kit/exec.ts";
import { createNetns, createPod, type Netns } from "../../test/fixtures/netns.ts";
import { toolPath } from "../../test/fixtures/tools.ts";
import { writeSettings } from "../settings.ts";
import { BUN, invoke, linkNames, MAIN, makeBridge, REPO } from "./testdata/invoke.ts";

const NETWORK = `sktcni${process.pid}`;
const CNITOOL_CACHE = "/var/lib/cni/results";

let node: Netns;
let dir: string;
let settingsFile: string;
let dataDir: string;
let pluginDir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "skein-cnitool-"));
  settingsFile = join(dir, "network.json");
  dataDir = join(dir, "ipam");
  // cnitool finds plugins by type in CNI_PATH: a stand-in `skein` executable.
  pluginDir = join(dir, "bin");
  await mkdir(pluginDir);
  await writeFile(join(pluginDir, "skein"), `#!/bin/sh\ncd '${REPO}' && exec '${BUN}' '${MAIN}'\n`);
  await chmod(join(pluginDir, "skein"), 0o755);
  node = await createNetns("n");
  await makeBridge(node, "skein0", "10.32.1.1/16");
});

afterAll(async () => {
  await node?.destroy();
  await rm(dir, { recursive: true, force: true });
  // libcni's result cache; DEL removes entries, this catches a failed test's.
  for (const name of await readdir(CNITOOL_CACHE).catch(() => [] as string[])) {
    if (name.startsWith(`${NETWORK}-`)) await rm(join(CNITOOL_CACHE, name), { force: true });
  }
});

async function netconfDir(name: string, conflist: object): Promise<string> {
  const path = join(dir, name);
  await mkdir(path, { recursive: true });
  await writeFile(join(path, "10-skein.conflist"), JSON.stringify(conflist));
  return path;
}

function cnitool(confDir: string, args: string[], extraEnv: Record<string, string> = {}) {
  return run(["nsenter", `--net=${node.path}`, "--", toolPath("cnitool"), ...args], {
    env: { PATH: process.env.PATH, NETCONFPATH: confDir, CNI_PATH: `${pluginDir}:/usr/lib/cni`, ...extraEnv },
    timeoutMs: 60_000,
  });
}

async function records(): Promise<string[]> {
  return (await readdir(join(dataDir, NETWORK)).catch(() => [] as string[])).filter((n) => /^\d/.test(n));
}

describe("skein through cnitool", () => {
  it("runs the whole lifecycle: status, add, check, gc, del", async () => {
    const skein = { type: "skein", settingsFile, dataDir };
    const conf = await netconfDir("v11", { cniVersion: "1.1.0", name: NETWORK, plugins: [skein] });
    const pod = await createPod();
    const leaked = await createPod();
    try {
      await expect(cnitool(conf, ["status", NETWORK, pod.path])).rejects.toThrow(/plugin not available/);
      await writeSettings(
        {
          version: 1,
          network: NETWORK,
          networkCIDR: "10.32.0.0/16",
          blockCIDR: "10.32.1.0/24",
          gateway: "10.32.1.1",
          mtu: 1450,
          bridge: "skein0",
        },
        settingsFile,
      );
      await cnitool(conf, ["status", NETWORK, pod.path]);

      const added = JSON.parse((await cnitool(conf, ["add", NETWORK, pod.path])).stdout) as {
        ips: { address: string }[];
      };
      expect(added.ips[0]?.address).toMatch(/^10\.32\.1\.\d+\/16$/);
      await pod.exec(["ping", "-c1", "-W2", "10.32.1.1"]);
      await cnitool(conf, ["check", NETWORK, pod.path]);

      // An attachment the runtime has forgotten: ADD behind cnitool's back.
      const forgotten = await invoke(
        node,
        { CNI_COMMAND: "ADD", CNI_CONTAINERID: "forgotten", CNI_NETNS: leaked.path, CNI_IFNAME: "eth0" },
        { cniVersion: "1.1.0", name: NETWORK, ...skein },
      );
      expect(forgotten.exitCode, forgotten.stdout).toBe(0);
      expect(await records()).toHaveLength(2);

      // cnitool's GC lists no valid attachment: libcni DELs the ones it cached,
      // then the plugin's GC frees the rest.
      await cnitool(conf, ["gc", NETWORK, pod.path]);
      expect(await records()).toEqual([]);
      expect(await linkNames(node)).toEqual(["lo", "skein0"]);

      await cnitool(conf, ["del", NETWORK, pod.path]);
      await cnitool(conf, ["del", NETWORK, pod.path]);
      expect(await linkNames(pod)).toEqual(["lo"]);
    } finally {
      await cnitool(conf, ["del", NETWORK, pod.path]).catch(() => undefined);
      await pod.destroy();
      await leaked.destroy();
    }
  });

  it("works first in a chain with portmap: a host port reaches the pod", async () => {
    const conf = await netconfDir("v10", {
      cniVersion: "1.0.0",
      name: NETWORK,
      plugins: [
        { type: "skein", settingsFile, dataDir },
        { type: "portmap", capabilities: { portMappings: true }, snat: true },
      ],
    });
    await writeSettings(
      {
        version: 1,
        network: NETWORK,
        networkCIDR: "10.32.0.0/16",
        blockCIDR: "10.32.1.0/24",
        gateway: "10.32.1.1",
        mtu: 1450,
        bridge: "skein0",
      },
      settingsFile,
    );
    const pod = await createPod();
    // A machine outside the overlay, wired to the node: it connects to the node's host port.
    const client = await createNetns("c");
    const capArgs = JSON.stringify({
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
    });
    try {
      await node.exec([
        "ip",
        "link",
        "add",
        "toclient",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        client.name,
      ]);
      await node.exec(["ip", "addr", "add", "192.168.77.1/24", "dev", "toclient"]);
      await node.exec(["ip", "link", "set", "toclient", "up"]);
      await node.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
      await client.exec(["ip", "addr", "add", "192.168.77.2/24", "dev", "eth0"]);
      await client.exec(["ip", "link", "set", "eth0", "up"]);

      const added = JSON.parse(
        (await cnitool(conf, ["add", NETWORK, pod.path], { CAP_ARGS: capArgs })).stdout,
      ) as {
        cniVersion: string;
        ips: { address: string }[];
      };
      expect(added.cniVersion).toBe("1.0.0");
      pod.spawn(
        "echo server",
        ["socat", "TCP-LISTEN:80,reuseaddr,fork", "SYSTEM:echo skein-pod"],
        join(dir, "socat.log"),
      );
      await waitFor(async () => (await pod.exec(["ss", "-Hltn", "sport = :80"])).stdout.trim() !== "");

      const reply = await client.exec(["socat", "-T3", "STDIO", "TCP:192.168.77.1:8080,connect-timeout=3"], {
        input: "",
      });
      expect(reply.stdout.trim()).toBe("skein-pod");

      // No CHECK on this chain: Debian's portmap 1.1.1 fails its own CHECK on a
      // host without IPv6 NAT chains ("could not check ipv6 dnat").
      await cnitool(conf, ["del", NETWORK, pod.path], { CAP_ARGS: capArgs });
      await expect(
        client.exec(["socat", "-T2", "STDIO", "TCP:192.168.77.1:8080,connect-timeout=2"], { input: "" }),
      ).rejects.toThrow();
      expect(await records()).toEqual([]);
    } finally {
      await cnitool(conf, ["del", NETWORK, pod.path], { CAP_ARGS: capArgs }).catch(() => undefined);
      await client.destroy();
      await pod.destroy();
      await node.exec(["ip", "link", "del", "toclient"]).catch(() => undefined);
    }
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 100));
  }
}
