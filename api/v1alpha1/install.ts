/**
 * Installs the skein.io CRDs: server-side applies every file in crds/ (Skein is
 * the one field manager of its own CRDs, so conflicts are forced) and waits
 * until the API server serves each kind (Established). The operator, the tests
 * and the demo all install the API this way.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  ApiException,
  ApiextensionsV1Api,
  type KubeConfig,
  KubernetesObjectApi,
  loadYaml,
  PatchStrategy,
  type V1CustomResourceDefinition,
} from "@kubernetes/client-node";
import { describeError, SkeinError } from "../../kit/errors.ts";

export const DEFAULT_CRDS_DIR = fileURLToPath(new URL("../../crds/", import.meta.url));
const FIELD_MANAGER = "skein";
const POLL_MS = 100;

export class CrdInstallError extends SkeinError {
  constructor(code: "CrdApplyFailed" | "CrdNotEstablished", message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export interface ApplyCrdsOptions {
  /** Folder holding the CRD YAML files; the repository's crds/ by default. */
  dir?: string;
  /** How long to wait for each CRD to be Established. Default 30 s. */
  timeoutMs?: number;
}

/**
 * The CRD manifests in `dir`, in file-name order, as client-node models. They
 * must go through `loadYaml`: client-node serializes requests from its models,
 * and a plain parsed object loses every key the model spells differently
 * (`default`, `enum`, `x-kubernetes-validations`), silently.
 */
export async function readCrds(dir = DEFAULT_CRDS_DIR): Promise<V1CustomResourceDefinition[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".yaml")).sort();
  return Promise.all(
    files.map(async (f) => loadYaml<V1CustomResourceDefinition>(await readFile(path.join(dir, f), "utf8"))),
  );
}

/** Server-side applies every CRD and resolves with their names once all are Established. */
export async function applyCrds(kubeConfig: KubeConfig, options: ApplyCrdsOptions = {}): Promise<string[]> {
  const crds = await readCrds(options.dir);
  const objects = KubernetesObjectApi.makeApiClient(kubeConfig);
  const apiext = kubeConfig.makeApiClient(ApiextensionsV1Api);
  for (const crd of crds) {
    try {
      await objects.patch(crd, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    } catch (cause) {
      throw new CrdInstallError(
        "CrdApplyFailed",
        `applying the CRD ${crd.metadata?.name} failed: ${statusMessage(cause)}`,
        { cause },
      );
    }
  }
  const names = crds.map((crd) => crd.metadata?.name ?? "");
  await Promise.all(names.map((name) => waitEstablished(apiext, name, options.timeoutMs ?? 30_000)));
  return names;
}

/** The API server's own words from a failed call (its Status message), not the HTTP dump. */
function statusMessage(err: unknown): string {
  if (err instanceof ApiException) {
    try {
      const body = typeof err.body === "string" ? JSON.parse(err.body) : err.body;
      if (typeof body?.message === "string") return body.message;
    } catch {
      // Not a Status object: fall through to the exception's own message.
    }
  }
  return describeError(err);
}

async function waitEstablished(api: ApiextensionsV1Api, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no status yet";
  for (;;) {
    const crd = await api.readCustomResourceDefinition({ name });
    const conditions = crd.status?.conditions ?? [];
    const namesAccepted = conditions.find((c) => c.type === "NamesAccepted");
    if (namesAccepted?.status === "False") {
      throw new CrdInstallError(
        "CrdNotEstablished",
        `the CRD ${name} was not accepted: ${namesAccepted.message}; another CRD already uses one of its names`,
      );
    }
    const established = conditions.find((c) => c.type === "Established");
    if (established?.status === "True") return;
    last = established ? `${established.reason}: ${established.message}` : last;
    if (Date.now() >= deadline) {
      throw new CrdInstallError(
        "CrdNotEstablished",
        `the CRD ${name} was not Established within ${timeoutMs} ms (${last}); check the API server's log`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
