/**
 * The transfer PKI: one cluster CA, kept in the Secret `skein-transfer-ca` in
 * the operator's namespace, and for every Node a Secret
 * `skein-transfer-<node>` there with that node's certificate (CN and SAN are
 * the node name), its key and the CA certificate. Node agents read their own
 * Secret and present the certificate to each other (mutual TLS), so only nodes
 * the operator vouched for can push or pull a dataset.
 *
 * Level-triggered per node name: a Node that exists gets a certificate signed
 * by the current CA with at least RENEW_DAYS left, and a Node that is gone
 * loses its Secret (its certificate then only lives until it expires: the
 * endpoint has no revocation list; short validity is the limit). The CA is
 * created once and never replaced by the operator: replacing it would cut
 * every node off from every other until all had reloaded.
 */
import { CoreV1Api, type KubeConfig, type V1Node, type V1Secret } from "@kubernetes/client-node";
import { isConflict, isNotFound } from "../../kit/k8s/api-status.ts";
import type { Informer } from "../../kit/k8s/informer.ts";
import type { Logger } from "../../kit/log.ts";
import {
  CA_SECRET,
  createCa,
  daysLeft,
  issueNodeCert,
  nodeSecretName,
  type PemPair,
  SECRET_KEYS,
} from "../../kit/pki.ts";

const NODE_LABEL = "skein.io/transfer-node";
const CERT_DAYS = 365;
/** A node certificate with fewer days left than this is reissued. */
const RENEW_DAYS = 30;

export interface TransferPkiDeps {
  kubeConfig: KubeConfig;
  namespace: string;
  nodes: Informer<V1Node>;
  log: Logger;
}

const encode = (s: string) => Buffer.from(s, "utf8").toString("base64");
const decode = (s: string | undefined) =>
  s === undefined ? undefined : Buffer.from(s, "base64").toString("utf8");

/** Whether a node's Secret must be (re)issued: missing, signed by another CA, or close to expiry. */
export function needsIssue(secret: V1Secret | undefined, caCertPem: string, now = Date.now()): boolean {
  const cert = decode(secret?.data?.[SECRET_KEYS.cert]);
  if (!cert || !secret?.data?.[SECRET_KEYS.key]) return true;
  if (decode(secret.data[SECRET_KEYS.ca]) !== caCertPem) return true;
  return daysLeft(cert, now) < RENEW_DAYS;
}

export class TransferPkiReconciler {
  private readonly core: CoreV1Api;
  private ca: PemPair | undefined;

  constructor(private readonly deps: TransferPkiDeps) {
    this.core = deps.kubeConfig.makeApiClient(CoreV1Api);
  }

  async reconcile(node: string): Promise<void> {
    const name = nodeSecretName(node);
    if (!this.deps.nodes.get(node)) {
      await this.core.deleteNamespacedSecret({ name, namespace: this.deps.namespace }).then(
        () => this.deps.log.info({ node }, "removed the transfer certificate of a deleted node"),
        (err: unknown) => {
          if (!isNotFound(err)) throw err;
        },
      );
      return;
    }
    const ca = await this.clusterCa();
    const existing = await this.read(name);
    if (!needsIssue(existing, ca.certPem)) return;
    const cert = await issueNodeCert(ca, node, CERT_DAYS);
    const body: V1Secret = {
      metadata: {
        name,
        namespace: this.deps.namespace,
        labels: { [NODE_LABEL]: node, "app.kubernetes.io/managed-by": "skein-operator" },
        ...(existing ? { resourceVersion: existing.metadata?.resourceVersion } : {}),
      },
      type: "Opaque",
      data: {
        [SECRET_KEYS.ca]: encode(ca.certPem),
        [SECRET_KEYS.cert]: encode(cert.certPem),
        [SECRET_KEYS.key]: encode(cert.keyPem),
      },
    };
    if (existing) await this.core.replaceNamespacedSecret({ name, namespace: this.deps.namespace, body });
    else await this.core.createNamespacedSecret({ namespace: this.deps.namespace, body });
    this.deps.log.info({ node, secret: name }, "issued a transfer certificate");
  }

  /** The CA: read from its Secret, created there once when none exists. */
  private async clusterCa(): Promise<PemPair> {
    if (this.ca) return this.ca;
    const secret = await this.read(CA_SECRET);
    const certPem = decode(secret?.data?.[SECRET_KEYS.cert]);
    const keyPem = decode(secret?.data?.[SECRET_KEYS.key]);
    if (certPem && keyPem) {
      this.ca = { certPem, keyPem };
      return this.ca;
    }
    if (secret) {
      throw new Error(
        `Secret ${this.deps.namespace}/${CA_SECRET} lacks ${SECRET_KEYS.cert} or ${SECRET_KEYS.key}; delete it to have a new CA made (every node certificate is then reissued)`,
      );
    }
    const ca = await createCa("skein-transfer-ca");
    try {
      await this.core.createNamespacedSecret({
        namespace: this.deps.namespace,
        body: {
          metadata: { name: CA_SECRET, labels: { "app.kubernetes.io/managed-by": "skein-operator" } },
          type: "Opaque",
          data: { [SECRET_KEYS.cert]: encode(ca.certPem), [SECRET_KEYS.key]: encode(ca.keyPem) },
        },
      });
    } catch (err) {
      // Another replica made one first: use that one (read on the retry).
      if (isConflict(err)) throw new Error("the transfer CA was created concurrently; retrying");
      throw err;
    }
    this.deps.log.info({ secret: CA_SECRET }, "created the transfer CA");
    this.ca = ca;
    return ca;
  }

  private async read(name: string): Promise<V1Secret | undefined> {
    try {
      return await this.core.readNamespacedSecret({ name, namespace: this.deps.namespace });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
}
