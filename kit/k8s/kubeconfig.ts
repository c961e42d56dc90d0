/**
 * Where a component finds the API server, in client-go's order: an explicit
 * `--kubeconfig` path, then `$KUBECONFIG` (a path list, merged, the first
 * file's context wins), then the pod's service account, then
 * `~/.kube/config`. Unlike client-node's `loadFromDefault`, which silently
 * falls back to http://localhost:8080, finding nothing is an error that
 * says what was tried.
 */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { describeError, SkeinError } from "../errors.ts";

export class KubeconfigError extends SkeinError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("KubeconfigNotFound", message, options);
  }
}

export interface KubeconfigSources {
  /** The `--kubeconfig` flag's value, when given. */
  path?: string;
  env?: NodeJS.ProcessEnv;
  /** Prefix for the service-account files; tests point it at a fake pod filesystem. */
  inClusterRoot?: string;
  home?: string;
}

const SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount";

export type KubeconfigSource = "flag" | "KUBECONFIG" | "in-cluster" | "home";

export function loadKubeConfig(sources: KubeconfigSources = {}): {
  kubeConfig: KubeConfig;
  source: KubeconfigSource;
} {
  const env = sources.env ?? process.env;
  if (sources.path) return { kubeConfig: fromFiles([sources.path], "--kubeconfig"), source: "flag" };

  const listed = (env.KUBECONFIG ?? "").split(delimiter).filter(Boolean);
  if (listed.length > 0) return { kubeConfig: fromFiles(listed, "$KUBECONFIG"), source: "KUBECONFIG" };

  const root = sources.inClusterRoot ?? "";
  const tokenPath = `${root}${SERVICE_ACCOUNT}/token`;
  const inPod = env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT;
  if (inPod && existsSync(tokenPath)) {
    const kc = new KubeConfig();
    // loadFromCluster reads the host and port from process.env only.
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    process.env.KUBERNETES_SERVICE_HOST = env.KUBERNETES_SERVICE_HOST;
    process.env.KUBERNETES_SERVICE_PORT = env.KUBERNETES_SERVICE_PORT;
    try {
      kc.loadFromCluster(root);
    } finally {
      restoreEnv("KUBERNETES_SERVICE_HOST", saved.host);
      restoreEnv("KUBERNETES_SERVICE_PORT", saved.port);
    }
    return { kubeConfig: kc, source: "in-cluster" };
  }

  const homeConfig = join(sources.home ?? homedir(), ".kube", "config");
  if (existsSync(homeConfig))
    return { kubeConfig: fromFiles([homeConfig], "~/.kube/config"), source: "home" };

  const podHint = inPod
    ? `the pod has KUBERNETES_SERVICE_HOST but no service-account token at ${tokenPath} (is automountServiceAccountToken off?)`
    : "not running in a pod (KUBERNETES_SERVICE_HOST is unset)";
  throw new KubeconfigError(
    `no Kubernetes API configuration found: no --kubeconfig flag, $KUBECONFIG is unset, ${podHint}, and ${homeConfig} does not exist; pass --kubeconfig <path> or set KUBECONFIG`,
  );
}

function fromFiles(paths: string[], origin: string): KubeConfig {
  let merged: KubeConfig | undefined;
  for (const path of paths) {
    const one = new KubeConfig();
    try {
      one.loadFromFile(path);
      if (merged) merged.mergeConfig(one, true);
      else merged = one;
    } catch (cause) {
      throw new KubeconfigError(
        `cannot load the kubeconfig ${path} (from ${origin}): ${describeError(cause)}`,
        {
          cause,
        },
      );
    }
  }
  if (!merged?.getCurrentCluster()) {
    throw new KubeconfigError(
      `the kubeconfig from ${origin} (${paths.join(delimiter)}) has no current context naming a cluster; set current-context`,
    );
  }
  return merged;
}

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}
