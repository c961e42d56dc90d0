/**
 * The CSI driver's configuration, from command-line flags, checked before
 * anything starts: a bad flag is a usage error with a message, never a
 * half-started plugin. Pure; main.ts acts on the result.
 */
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { InvalidInputError } from "../kit/errors.ts";
import { parseListenAddress } from "../kit/serve.ts";
import { socketPathOf } from "./grpc/server.ts";
import { validatePoolName } from "./zfs/names.ts";

export interface CommonConfig {
  endpoint: string;
  kubeconfig: string | undefined;
  cluster: string;
  metricsAddress: { host: string; port: number } | undefined;
}

export interface ControllerConfig extends CommonConfig {
  waitTimeoutMs: number;
}

export interface NodeConfig extends CommonConfig {
  nodeId: string;
  pool: string;
  resyncMs: number;
}

const DNS_LABELS = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Topology values are label values: 63 characters, alphanumerics with -_. inside. */
const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

const COMMON_FLAGS = {
  endpoint: { type: "string", default: "unix:///run/csi/socket" },
  kubeconfig: { type: "string" },
  cluster: { type: "string", default: "skein" },
  "metrics-address": { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;

const COMMON_HELP = `  --endpoint unix:///path   CSI socket to serve (default unix:///run/csi/socket)
  --kubeconfig PATH         kubeconfig; else $KUBECONFIG, the pod's service account, ~/.kube/config
  --cluster NAME            value of the skein.io/cluster topology key every Skein node carries
                            (default skein); volumes are accessible from every node with it
  --metrics-address H:P     serve /metrics, /healthz and /readyz there (e.g. :9808); off by default
  -h, --help                show this help`;

export const CONTROLLER_HELP = `usage: skein csi-controller [flags]

Serves the CSI Identity and Controller services: CreateVolume writes a skein.io
Volume and waits until the owning node's agent reports it ready.

flags:
${COMMON_HELP}
  --wait-timeout SECONDS    how long a call waits for a node agent (default 60)`;

export const NODE_HELP = `usage: skein csi-node [flags]

Serves the CSI Identity and Node services, and runs this node's volume agent:
it converges the Volumes and Snapshots this node owns into ZFS datasets under
<pool>/skein and publishes the node's StoragePool.

flags:
${COMMON_HELP}
  --node-id NAME            this node's name (default $NODE_NAME, else the host name)
  --pool NAME               the ZFS pool that holds this node's volumes (required)
  --resync SECONDS          how often every volume is converged again and the StoragePool
                            (size, free space, orphaned datasets) refreshed (default 30)`;

export type Parsed<C> = { help: true } | { help: false; config: C };

function common(values: Values): CommonConfig {
  const endpoint = String(values.endpoint);
  socketPathOf(endpoint);
  const cluster = String(values.cluster);
  if (!LABEL_VALUE.test(cluster)) {
    throw new InvalidInputError(
      `--cluster ${JSON.stringify(cluster)} must be a label value (letters, digits, -_., at most 63)`,
    );
  }
  const metrics = values["metrics-address"];
  return {
    endpoint,
    kubeconfig: typeof values.kubeconfig === "string" ? values.kubeconfig : undefined,
    cluster,
    metricsAddress: typeof metrics === "string" ? parseListenAddress(metrics) : undefined,
  };
}

function seconds(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback * 1000;
  const n = Number(value);
  if (!(n > 0))
    throw new InvalidInputError(`${flag} must be a positive number of seconds, got ${JSON.stringify(value)}`);
  return n * 1000;
}

type Values = Record<string, string | boolean | undefined>;

function parse(argv: string[], extra: Record<string, { type: "string" }>): Values {
  try {
    return parseArgs({
      args: argv,
      options: { ...COMMON_FLAGS, ...extra },
      strict: true,
      allowPositionals: false,
    }).values as Values;
  } catch (err) {
    throw new InvalidInputError((err as Error).message);
  }
}

export function parseControllerFlags(argv: string[]): Parsed<ControllerConfig> {
  const values = parse(argv, { "wait-timeout": { type: "string" } });
  if (values.help) return { help: true };
  return {
    help: false,
    config: {
      ...common(values),
      waitTimeoutMs: seconds("--wait-timeout", values["wait-timeout"] as string | undefined, 60),
    },
  };
}

export function parseNodeFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): Parsed<NodeConfig> {
  const values = parse(argv, {
    "node-id": { type: "string" },
    pool: { type: "string" },
    resync: { type: "string" },
  });
  if (values.help) return { help: true };
  const nodeId = (values["node-id"] as string | undefined) ?? env.NODE_NAME ?? hostname();
  if (nodeId.length > 253 || !DNS_LABELS.test(nodeId)) {
    throw new InvalidInputError(
      `node id ${JSON.stringify(nodeId)} is not a Kubernetes node name; pass --node-id`,
    );
  }
  const pool = values.pool as string | undefined;
  if (!pool) throw new InvalidInputError("--pool is required: the ZFS pool that holds this node's volumes");
  validatePoolName(pool);
  return {
    help: false,
    config: {
      ...common(values),
      nodeId,
      pool,
      resyncMs: seconds("--resync", values.resync as string | undefined, 30),
    },
  };
}
