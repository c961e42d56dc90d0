/** `skein net-agent` flags: parsed and checked before anything is touched (pure). */
import { availableParallelism } from "node:os";
import { isAbsolute } from "node:path";
import { parseArgs } from "node:util";
import { InvalidInputError } from "../../kit/errors.ts";
import { parseListenAddress } from "../../kit/serve.ts";
import { parseListen } from "../dns/flags.ts";
import type { ListenAddress } from "../dns/responder.ts";
import { interfaceNameProblem } from "../netlink/ifname.ts";
import { DEFAULT_SETTINGS_PATH } from "../settings.ts";

export interface AgentConfig {
  node: string;
  kubeconfig?: string;
  network: string;
  underlayInterface?: string;
  cniBinDir: string;
  cniConfDir: string;
  settingsFile: string;
  /** Where the plugin keeps its address records; written into the conflist when set. */
  pluginDataDir?: string;
  /** The plugin executable to install into cniBinDir. */
  pluginSource: string;
  portmap: boolean;
  metricsAddress: { host: string; port: number };
  resyncSeconds: number;
  /**
   * Run the node's DNS responder on the gateway address (port 53) and these,
   * answering from `workers` processes (1: inside the agent's own process).
   */
  dns: {
    enabled: boolean;
    extraListen: ListenAddress[];
    workers: number;
    /** The DNS program and the arguments that make it `skein dns`; its flags follow. */
    program: readonly [string, ...string[]];
  };
}

/**
 * Each DNS worker adds its own API watches and about 60 MiB (measured, Bun, an
 * empty cluster), beside the DNS program's own supervising process; one Bun
 * worker already answers more than dnsmasq (bench/dns.bench.ts).
 */
const DEFAULT_DNS_WORKERS_CAP = 2;
const MAX_DNS_WORKERS = 64;

export const USAGE = `usage: skein net-agent --node NAME [flags]

Runs on every node (host networking). Builds the bridge skein0 and its VXLAN
port from the node's NodeSubnet, keeps the flood list in line with the peers'
NodeSubnets, masquerades pod traffic leaving the overlay, and installs the CNI
plugin, its settings file and a conflist. SIGTERM stops it and leaves the
devices in place, so running pods keep their network.

flags:
  --node NAME                 this node's name (default: $NODE_NAME)
  --kubeconfig PATH           API server access (default: $KUBECONFIG, in-cluster, ~/.kube/config)
  --network NAME              the Network to join (default: skein)
  --underlay-interface NAME   interface VXLAN runs over (default: the one holding the node's VTEP address)
  --cni-bin-dir DIR           where the plugin is installed (default: /opt/cni/bin)
  --cni-conf-dir DIR          where the conflist is written (default: /etc/cni/net.d)
  --settings-file PATH        node settings for the plugin (default: ${DEFAULT_SETTINGS_PATH})
  --plugin-data-dir DIR       the plugin's address records (default: the plugin's own)
  --plugin-source PATH        plugin executable to install (default: skein-cni beside this program)
  --no-portmap                do not chain the portmap plugin (hostPort) in the conflist
  --metrics-address HOST:PORT /metrics, /healthz, /readyz (default: 0.0.0.0:9402)
  --resync-seconds N          full resync period (default: 30)
  --no-dns                    do not run the node's DNS responder (default: it answers on the gateway, port 53)
  --dns-listen ADDR[:PORT]    also answer DNS here; repeatable
  --dns-workers N             processes answering DNS on the same sockets, 1 to ${MAX_DNS_WORKERS}
                              (default: the cores available, at most ${DEFAULT_DNS_WORKERS_CAP})
  --dns-program PATH          the DNS responder's executable, which takes \`skein dns\` flags (default: skein-dns
                              beside this program; without it, this program's \`skein dns\`)
  --help                      this text`;

function absolute(flag: string, value: string): string {
  if (!isAbsolute(value))
    throw new InvalidInputError(`--${flag} must be an absolute path, got ${JSON.stringify(value)}`);
  return value;
}

/** The parsed config, or "help" when --help was asked for. */
export function parseAgentFlags(
  argv: string[],
  env: NodeJS.ProcessEnv,
  defaults: { pluginSource: string; dnsProgram: readonly [string, ...string[]]; cores?: number },
): AgentConfig | "help" {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    throw new InvalidInputError(`${(err as Error).message}; see --help`);
  }
  const v = parsed.values;
  if (v.help) return "help";
  const node = v.node ?? env.NODE_NAME;
  if (!node)
    throw new InvalidInputError("--node is required (or set NODE_NAME, e.g. from the pod's spec.nodeName)");
  if (v["underlay-interface"] !== undefined) {
    const problem = interfaceNameProblem(v["underlay-interface"]);
    if (problem)
      throw new InvalidInputError(
        `--underlay-interface ${JSON.stringify(v["underlay-interface"])} ${problem}`,
      );
  }
  const resyncSeconds = Number(v["resync-seconds"] ?? "30");
  if (!Number.isFinite(resyncSeconds) || resyncSeconds < 1 || resyncSeconds > 86_400) {
    throw new InvalidInputError(
      `--resync-seconds must be a number of seconds from 1 to 86400, got ${v["resync-seconds"]}`,
    );
  }
  const dnsWorkersText =
    v["dns-workers"] ?? String(Math.min(defaults.cores ?? availableParallelism(), DEFAULT_DNS_WORKERS_CAP));
  const dnsWorkers = Number(dnsWorkersText);
  if (!/^\d+$/.test(dnsWorkersText) || dnsWorkers < 1 || dnsWorkers > MAX_DNS_WORKERS) {
    throw new InvalidInputError(
      `--dns-workers must be a whole number from 1 to ${MAX_DNS_WORKERS}, got ${dnsWorkersText}`,
    );
  }
  const config: AgentConfig = {
    node,
    network: v.network ?? "skein",
    cniBinDir: absolute("cni-bin-dir", v["cni-bin-dir"] ?? "/opt/cni/bin"),
    cniConfDir: absolute("cni-conf-dir", v["cni-conf-dir"] ?? "/etc/cni/net.d"),
    settingsFile: absolute("settings-file", v["settings-file"] ?? DEFAULT_SETTINGS_PATH),
    pluginSource: absolute("plugin-source", v["plugin-source"] ?? defaults.pluginSource),
    portmap: !v["no-portmap"],
    metricsAddress: parseListenAddress(v["metrics-address"] ?? "0.0.0.0:9402"),
    resyncSeconds,
    dns: {
      enabled: !v["no-dns"],
      extraListen: (v["dns-listen"] ?? []).map(parseListen),
      workers: dnsWorkers,
      program:
        v["dns-program"] === undefined ? defaults.dnsProgram : [absolute("dns-program", v["dns-program"])],
    },
  };
  if (v.kubeconfig !== undefined) config.kubeconfig = v.kubeconfig;
  if (v["underlay-interface"] !== undefined) config.underlayInterface = v["underlay-interface"];
  if (v["plugin-data-dir"] !== undefined)
    config.pluginDataDir = absolute("plugin-data-dir", v["plugin-data-dir"]);
  return config;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      node: { type: "string" },
      kubeconfig: { type: "string" },
      network: { type: "string" },
      "underlay-interface": { type: "string" },
      "cni-bin-dir": { type: "string" },
      "cni-conf-dir": { type: "string" },
      "settings-file": { type: "string" },
      "plugin-data-dir": { type: "string" },
      "plugin-source": { type: "string" },
      "no-portmap": { type: "boolean" },
      "metrics-address": { type: "string" },
      "resync-seconds": { type: "string" },
      "no-dns": { type: "boolean" },
      "dns-listen": { type: "string", multiple: true },
      "dns-workers": { type: "string" },
      "dns-program": { type: "string" },
      help: { type: "boolean" },
    },
  });
}
