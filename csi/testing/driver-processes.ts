/**
 * For tests and the benchmark: `skein csi-controller` and `skein csi-node` as
 * real processes (node --import tsx), on a pool and an API server the caller
 * provides, with their sockets in a fresh directory. `stop()` ends both.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type OwnedProcess, startProcess, waitUntilReady } from "../../test/fixtures/process.ts";
import { scratchDir } from "../../test/fixtures/scratch.ts";
import { CsiClient } from "../grpc/load.ts";

const ENTRY = fileURLToPath(new URL("../../cmd/skein.ts", import.meta.url));

export interface DriverProcesses {
  dir: string;
  controllerEndpoint: string;
  nodeEndpoint: string;
  node: string;
  cluster: string;
  controller(): CsiClient<"Controller">;
  nodeClient(): CsiClient<"Node">;
  /** Restarts the node plugin (and its agent), as a crash and restart would. */
  restartNode(): Promise<void>;
  stop(): Promise<void>;
}

function skein(args: string[]): string[] {
  return [process.execPath, "--import", "tsx", ENTRY, ...args];
}

async function ready(proc: OwnedProcess, endpoint: string, service: "Controller" | "Node"): Promise<void> {
  const client = new CsiClient(service === "Controller" ? "Controller" : "Node", endpoint);
  try {
    await waitUntilReady(
      proc,
      async () => {
        if (service === "Controller")
          await (client as CsiClient<"Controller">).call(
            "ControllerGetCapabilities",
            {},
            { deadlineMs: 2_000 },
          );
        else await (client as CsiClient<"Node">).call("NodeGetInfo", {}, { deadlineMs: 2_000 });
        return true;
      },
      60_000,
    );
  } finally {
    client.close();
  }
}

export async function startDriver(options: {
  kubeconfigPath: string;
  pool: string;
  node: string;
  cluster: string;
  controllerArgs?: string[];
  nodeArgs?: string[];
}): Promise<DriverProcesses> {
  const dir = scratchDir("csi");
  const controllerEndpoint = `unix://${join(dir, "controller.sock")}`;
  const nodeEndpoint = `unix://${join(dir, "node.sock")}`;
  const env = { ...process.env, SKEIN_LOG_LEVEL: process.env.SKEIN_LOG_LEVEL ?? "info" };
  const startNode = () =>
    startProcess(
      "skein csi-node",
      skein([
        "csi-node",
        `--endpoint=${nodeEndpoint}`,
        `--kubeconfig=${options.kubeconfigPath}`,
        `--node-id=${options.node}`,
        `--pool=${options.pool}`,
        `--cluster=${options.cluster}`,
        ...(options.nodeArgs ?? []),
      ]),
      join(dir, "node.log"),
      { env },
    );
  let node: OwnedProcess | undefined;
  let controller: OwnedProcess | undefined;
  const stop = async () => {
    await controller?.stop();
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    node = startNode();
    controller = startProcess(
      "skein csi-controller",
      skein([
        "csi-controller",
        `--endpoint=${controllerEndpoint}`,
        `--kubeconfig=${options.kubeconfigPath}`,
        `--cluster=${options.cluster}`,
        ...(options.controllerArgs ?? []),
      ]),
      join(dir, "controller.log"),
      { env },
    );
    await Promise.all([
      ready(node, nodeEndpoint, "Node"),
      ready(controller, controllerEndpoint, "Controller"),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    dir,
    controllerEndpoint,
    nodeEndpoint,
    node: options.node,
    cluster: options.cluster,
    controller: () => new CsiClient("Controller", controllerEndpoint),
    nodeClient: () => new CsiClient("Node", nodeEndpoint),
    async restartNode() {
      await node?.stop();
      node = startNode();
      await ready(node, nodeEndpoint, "Node");
    },
    stop,
  };
}
