/**
 * Where a node agent gets its transfer certificate: files in a directory (a
 * mounted Secret, or made by hand), or its Secret `skein-transfer-<node>` that
 * the operator issues, read through the API and waited for on first start
 * (the operator may not have got to a new node yet).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { SkeinError } from "../../kit/errors.ts";
import { isNotFound } from "../../kit/k8s/api-status.ts";
import type { Logger } from "../../kit/log.ts";
import { nodeSecretName, SECRET_KEYS } from "../../kit/pki.ts";
import type { TransferTls } from "./server.ts";

export type CredentialSource = { dir: string } | { namespace: string };

export async function loadTransferTls(
  source: CredentialSource,
  context: { node: string; kubeConfig: KubeConfig; log: Logger; timeoutMs?: number; signal?: AbortSignal },
): Promise<TransferTls> {
  if ("dir" in source) {
    const [caPem, certPem, keyPem] = await Promise.all(
      [SECRET_KEYS.ca, SECRET_KEYS.cert, SECRET_KEYS.key].map((f) => readFile(join(source.dir, f), "utf8")),
    );
    return { caPem: caPem!, certPem: certPem!, keyPem: keyPem! };
  }
  const core = context.kubeConfig.makeApiClient(CoreV1Api);
  const name = nodeSecretName(context.node);
  const deadline = Date.now() + (context.timeoutMs ?? 300_000);
  for (let attempt = 0; ; attempt++) {
    try {
      const secret = await core.readNamespacedSecret({ name, namespace: source.namespace });
      const field = (k: string) => {
        const v = secret.data?.[k];
        return v === undefined ? undefined : Buffer.from(v, "base64").toString("utf8");
      };
      const caPem = field(SECRET_KEYS.ca);
      const certPem = field(SECRET_KEYS.cert);
      const keyPem = field(SECRET_KEYS.key);
      if (caPem && certPem && keyPem) return { caPem, certPem, keyPem };
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (Date.now() > deadline || context.signal?.aborted) {
      throw new SkeinError(
        "TransferCertificateMissing",
        `Secret ${source.namespace}/${name} with this node's transfer certificate did not appear; is the operator running?`,
      );
    }
    if (attempt % 10 === 0)
      context.log.info({ secret: `${source.namespace}/${name}` }, "waiting for the transfer certificate");
    await sleep(Math.min(2_000, 200 * (attempt + 1)));
  }
}
