/**
 * Helpers for the agent's integration tests and the network benchmarks: the
 * plugin built as the single executable the agent installs, the API objects
 * the operator would write, the agent as a process inside a node namespace,
 * and `cnitool` driving the installed conflist. Real parts only.
 */
import { mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import {
  API_VERSION,
  GROUP,
  KINDS,
  type Network,
  type NodeSubnet,
  VERSION,
} from "../../api/v1alpha1/index.ts";
import { inNetns, run } from "../../kit/exec.ts";
import { isNotFound } from "../../kit/k8s/api-status.ts";
import type { Netns, Node } from "../../test/fixtures/netns.ts";
import type { OwnedProcess } from "../../test/fixtures/process.ts";
import { toolPath } from "../../test/fixtures/tools.ts";
import { writeSettings } from "../settings.ts";
import { applyPlan, type Exec, findUnderlay } from "./kernel.ts";
import { type OverlayPlan, planOverlay } from "./plan.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Builds the plugin as `npm run build` does (the single executable scripts/build-cni.mjs compiles) into `dir`. */
export async function buildPluginExecutable(dir: string): Promise<string> {
  const executable = join(dir, "skein-cni");
  await run([process.execPath, join(ROOT, "scripts/build-cni.mjs"), executable], { timeoutMs: 120_000 });
  return executable;
}

export function networkObject(name: string, spec: Partial<Network["spec"]> = {}): Network {
  return {
    apiVersion: API_VERSION,
    kind: "Network",
    metadata: { name },
    spec: { cidr: "10.32.0.0/16", vni: 42, nodeBlockPrefixLength: 24, ...spec },
  };
}

/** Node i's allocation, as the operator would make it: block 10.32.i.0/24, VTEP = the node's underlay address. */
export function nodeSubnetObject(network: string, node: Node, i: number): NodeSubnet {
  return {
    apiVersion: API_VERSION,
    kind: "NodeSubnet",
    metadata: { name: `${network}-${node.name}` },
    spec: {
      network,
      node: node.name,
      block: `10.32.${i}.0/24`,
      gateway: `10.32.${i}.1`,
      vtepAddress: node.address,
      vtepMAC: `0a:aa:00:00:00:${i.toString(16).padStart(2, "0")}`,
    },
  };
}

export class SkeinObjects {
  private readonly api: CustomObjectsApi;
  constructor(kc: KubeConfig) {
    this.api = kc.makeApiClient(CustomObjectsApi);
  }

  async create(obj: Network | NodeSubnet): Promise<void> {
    const plural = KINDS[obj.kind].plural;
    // Right after the CRDs are applied the new kinds may not be served for a moment.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.api.createClusterCustomObject({ group: GROUP, version: VERSION, plural, body: obj });
        return;
      } catch (err) {
        if (!isNotFound(err) || attempt > 50) throw err;
        await sleep(100);
      }
    }
  }

  async delete(kind: "Network" | "NodeSubnet", name: string): Promise<void> {
    await this.api
      .deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: KINDS[kind].plural, name })
      .catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
  }
}

export interface NodeDirs {
  bin: string;
  conf: string;
  settings: string;
  data: string;
  logs: string;
}

export function nodeDirs(root: string, node: Node): NodeDirs {
  const base = join(root, node.name);
  const dirs = {
    bin: join(base, "bin"),
    conf: join(base, "net.d"),
    settings: join(base, "run", "network.json"),
    data: join(base, "data"),
    logs: join(base, "logs"),
  };
  for (const d of [dirs.bin, dirs.conf, dirs.data, dirs.logs]) mkdirSync(d, { recursive: true });
  // The runtime's bin dir holds the chained plugins too, as /opt/cni/bin does.
  symlinkSync(join(REFERENCE_PLUGINS, "portmap"), join(dirs.bin, "portmap"));
  return dirs;
}

/** `skein net-agent` as a real process in the node's namespace, as the DaemonSet runs it. */
export function startAgent(
  node: Node,
  dirs: NodeDirs,
  options: {
    network: string;
    pluginSource: string;
    /** The DNS program (buildDnsExecutable); absent: the agent's fallback, `skein dns` on Node. */
    dnsProgram?: string;
    resyncSeconds?: number;
    logName?: string;
  },
): OwnedProcess {
  if (!node.kubeconfigPath)
    throw new Error(`${node.name} has no kubeconfig: create the cluster with an API server`);
  return node.netns.spawn(
    `net-agent on ${node.name}`,
    [
      process.execPath,
      "--import",
      "tsx",
      join(ROOT, "cmd/skein.ts"),
      "net-agent",
      `--node=${node.name}`,
      `--kubeconfig=${node.kubeconfigPath}`,
      `--network=${options.network}`,
      `--cni-bin-dir=${dirs.bin}`,
      `--cni-conf-dir=${dirs.conf}`,
      `--settings-file=${dirs.settings}`,
      `--plugin-data-dir=${dirs.data}`,
      `--plugin-source=${options.pluginSource}`,
      "--metrics-address=127.0.0.1:9402",
      `--resync-seconds=${options.resyncSeconds ?? 2}`,
      ...(options.dnsProgram ? [`--dns-program=${options.dnsProgram}`] : []),
    ],
    join(dirs.logs, options.logName ?? "net-agent.log"),
    { ...process.env, SKEIN_LOG_LEVEL: "info" },
  );
}

/** The reference plugins (portmap, bridge, host-local) from Debian's containernetworking-plugins. */
export const REFERENCE_PLUGINS = "/usr/lib/cni";

/** `cnitool <action> <network> <pod>` inside the node namespace, with the agent's conflist and plugin. */
export async function cnitool(
  node: Node,
  dirs: NodeDirs,
  action: "add" | "del" | "check" | "status" | "gc",
  network: string,
  pod: Netns,
  capabilityArgs?: object,
): Promise<string> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    NETCONFPATH: dirs.conf,
    CNI_PATH: `${dirs.bin}:${REFERENCE_PLUGINS}`,
  };
  if (capabilityArgs) env.CAP_ARGS = JSON.stringify(capabilityArgs);
  const { stdout } = await node.netns.exec([toolPath("cnitool"), action, network, pod.path], {
    env,
    timeoutMs: 30_000,
  });
  return stdout;
}

/** `exec` for the kernel verbs, acting inside a node's namespace. */
export function execIn(node: Node): Exec {
  return (argv, options) => run(inNetns(node.netns.path, argv), { timeoutMs: 15_000, ...options });
}

/**
 * What the agent does for node `i` (of `nodes`), without an API server: plans
 * from objects built here, converges the kernel and writes the settings file.
 * For benchmarks, which measure the data path and the plugin, not the watch.
 */
export async function convergeWithoutApi(
  nodes: readonly Node[],
  i: number,
  settingsFile: string,
  network = "bench",
): Promise<OverlayPlan> {
  const subnets = nodes.map((n, j) => nodeSubnetObject(network, n, j + 1));
  const exec = execIn(nodes[i]!);
  const own = subnets[i]!;
  const underlay = await findUnderlay(exec, own.spec.vtepAddress);
  const plan = planOverlay({ network: networkObject(network), own, subnets, underlay });
  await applyPlan(exec, plan);
  await writeSettings(plan.settings, settingsFile);
  return plan;
}

/** Runs a CNI plugin once inside `node`'s namespace, as a runtime would. */
export async function invokePlugin(
  node: Node,
  plugin: readonly string[],
  env: { command: string; containerID: string; netns?: string; ifname?: string; path?: string },
  conf: object,
): Promise<string> {
  const vars: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    CNI_COMMAND: env.command,
    CNI_CONTAINERID: env.containerID,
    CNI_IFNAME: env.ifname ?? "eth0",
    CNI_PATH: env.path ?? REFERENCE_PLUGINS,
  };
  if (env.netns) vars.CNI_NETNS = env.netns;
  const argv = plugin as [string, ...string[]];
  const { stdout } = await run(inNetns(node.netns.path, argv), {
    env: vars,
    input: JSON.stringify(conf),
    timeoutMs: 30_000,
  });
  return stdout;
}
