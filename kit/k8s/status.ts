/**
 * Writing an object's status subresource safely: the write carries the
 * resourceVersion it was computed from (compare-and-swap), and a 409 Conflict
 * means someone wrote in between, so the object is read again and the change
 * recomputed from the fresh copy (client-go's RetryOnConflict). Conditions and
 * other lists are therefore never replaced from a stale read.
 */
import { CustomObjectsApi, type KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { SkeinError } from "../errors.ts";
import { isConflict } from "./api-status.ts";

export class StatusConflictError extends SkeinError {
  constructor(what: string, attempts: number, options?: { cause?: unknown }) {
    super(
      "StatusConflict",
      `status of ${what} kept changing under us (${attempts} conflicting writes); the next reconcile will try again`,
      options,
    );
  }
}

export interface StatusAccess<T extends KubernetesObject> {
  read(): Promise<T>;
  /** Replaces the status of `obj`; `obj.metadata.resourceVersion` makes it a compare-and-swap. */
  replaceStatus(obj: T): Promise<T>;
}

/**
 * Applies `change` to the object's status and writes it. `change` gets a copy it
 * may mutate and returns false when there is nothing to write (no request is
 * made). Starts from `current` (say, the informer's copy) when given, else reads.
 * Returns the object as last written or read.
 */
export async function updateStatus<T extends KubernetesObject>(
  access: StatusAccess<T>,
  change: (draft: T) => boolean,
  options: { current?: T; attempts?: number; describe?: string } = {},
): Promise<T> {
  const attempts = options.attempts ?? 5;
  let obj = options.current ?? (await access.read());
  for (let attempt = 1; ; attempt++) {
    const draft = structuredClone(obj);
    if (!change(draft)) return obj;
    try {
      return await access.replaceStatus(draft);
    } catch (err) {
      if (!isConflict(err)) throw err;
      if (attempt >= attempts) {
        const what =
          options.describe ??
          `${obj.kind ?? "object"} ${obj.metadata?.namespace ?? ""}/${obj.metadata?.name}`;
        throw new StatusConflictError(what, attempt, { cause: err });
      }
      obj = await access.read();
    }
  }
}

export interface CustomResource {
  group: string;
  version: string;
  plural: string;
}

/** Status access to one custom object (`namespace` omitted for cluster-scoped kinds). */
export function customStatusAccess<T extends KubernetesObject>(
  kubeConfig: KubeConfig,
  resource: CustomResource,
  name: string,
  namespace?: string,
): StatusAccess<T> {
  const api = kubeConfig.makeApiClient(CustomObjectsApi);
  const { group, version, plural } = resource;
  if (namespace) {
    return {
      read: () =>
        api.getNamespacedCustomObjectStatus({ group, version, plural, namespace, name }) as Promise<T>,
      replaceStatus: (body) =>
        api.replaceNamespacedCustomObjectStatus({
          group,
          version,
          plural,
          namespace,
          name,
          body,
        }) as Promise<T>,
    };
  }
  return {
    read: () => api.getClusterCustomObjectStatus({ group, version, plural, name }) as Promise<T>,
    replaceStatus: (body) =>
      api.replaceClusterCustomObjectStatus({ group, version, plural, name, body }) as Promise<T>,
  };
}
