/**
 * The CSI driver's configuration, from command-line flags, checked before
 * anything starts: a bad flag is a usage error with a message, never a
 * half-started plugin. Pure; main.ts acts on the result.
 */
import { hostname } from "node:os";
import { isAbsolute } from "node:path";
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

export interface TransferConfig {
  /** Where this node's transfer endpoint listens. */
  listen: { host: string; port: number };
  /** The port every node's endpoint listens on (peers are found at their Node's InternalIP). */
  peerPort: number;
  /** Where the node's certificate comes from. */
  credentials: { dir: string } | { namespace: string };
}

export interface NodeConfig extends CommonConfig {
  nodeId: string;
  pool: string;
  resyncMs: number;
  /** How often each warm replica on this node pulls the owner's latest changes. */
  replicaSyncMs: number;
  /** Absent when no certificate source is given: the node then neither sends nor receives volumes. */
  transfer: TransferConfig | undefined;
  /** What must outlive a restart of the process (the sends under way). */
  stateDir: string;
}

export const DEFAULT_NODE_STATE_DIR = "/var/lib/skein/csi-node";

/** The transfer endpoint's port when no flag says otherwise. */
export const DEFAULT_TRANSFER_PORT = 7480;

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
                            (size, free space, orphaned datasets) refreshed (default 30)
  --replica-sync SECONDS    how often each warm replica kept on this node pulls the owner's
                            changes: the most writes a failover to it can lose (default 30)
  --transfer-secret-namespace NS
                            read this node's transfer certificate from the Secret
                            skein-transfer-<node-id> there (the operator issues it)
  --transfer-cert-dir DIR   or read it from DIR/ca.crt, DIR/tls.crt and DIR/tls.key
                            (without either, this node cannot move volumes to or from others)
  --transfer-address H:P    where the transfer endpoint listens (default :7480)
  --transfer-port N         the port every node's endpoint listens on; peers are reached at
                            their Node's InternalIP and this port (default: the listen port)
  --state-dir DIR           where the node keeps what must outlive a restart of this process:
                            the volume sends under way, so that holds a killed send leaves
                            on zfs-fuse are released (default ${DEFAULT_NODE_STATE_DIR})`;

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
    "replica-sync": { type: "string" },
    "transfer-secret-namespace": { type: "string" },
    "transfer-cert-dir": { type: "string" },
    "transfer-address": { type: "string" },
    "transfer-port": { type: "string" },
    "state-dir": { type: "string" },
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
      replicaSyncMs: seconds("--replica-sync", values["replica-sync"] as string | undefined, 30),
      transfer: transferConfig(values),
      stateDir: stateDir(values["state-dir"] as string | undefined),
    },
  };
}

function stateDir(value: string | undefined): string {
  if (value === undefined) return DEFAULT_NODE_STATE_DIR;
  if (!isAbsolute(value))
    throw new InvalidInputError(`--state-dir must be an absolute path, got ${JSON.stringify(value)}`);
  return value;
}

function transferConfig(values: Values): TransferConfig | undefined {
  const namespace = values["transfer-secret-namespace"] as string | undefined;
  const dir = values["transfer-cert-dir"] as string | undefined;
  const address = values["transfer-address"] as string | undefined;
  const port = values["transfer-port"] as string | undefined;
  if (namespace !== undefined && dir !== undefined) {
    throw new InvalidInputError("give --transfer-secret-namespace or --transfer-cert-dir, not both");
  }
  if (namespace === undefined && dir === undefined) {
    if (address !== undefined || port !== undefined) {
      throw new InvalidInputError(
        "--transfer-address and --transfer-port need a certificate: add --transfer-secret-namespace or --transfer-cert-dir",
      );
    }
    return undefined;
  }
  if (namespace !== undefined && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) {
    throw new InvalidInputError(
      `--transfer-secret-namespace ${JSON.stringify(namespace)} is not a namespace name`,
    );
  }
  const listen = parseListenAddress(address ?? `:${DEFAULT_TRANSFER_PORT}`);
  let peerPort = listen.port;
  if (port !== undefined) {
    peerPort = Number(port);
    if (!(Number.isInteger(peerPort) && peerPort > 0 && peerPort < 65536))
      throw new InvalidInputError(
        `--transfer-port must be a TCP port (1-65535), got ${JSON.stringify(port)}`,
      );
  }
  if (peerPort === 0)
    throw new InvalidInputError("--transfer-port is needed when --transfer-address picks port 0");
  return { listen, peerPort, credentials: namespace !== undefined ? { namespace } : { dir: dir! } };
}
