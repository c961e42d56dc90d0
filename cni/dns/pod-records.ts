/**
 * The record source: which pods answer for which names, from the API server
 * alone (a pod informer, a node informer, the Network), no gossip and no store
 * of its own beyond the index it serves from.
 *
 * A pod has records while it is healthy, which `podRecord` decides from what
 * the API server says now (level-triggered, no memory of events):
 * not being deleted, not finished, an overlay address, Ready, its node still
 * there (the Node object exists and its Ready condition is not Unknown, the
 * node controller's mark for a node that stopped reporting), and where the pod
 * asks for active probes (or carries the readiness gate) the condition
 * `skein.io/dns-healthy` True, written by the agent on its node. Every node's
 * responder reads the same objects, so all agree on who is healthy.
 *
 * Names: `<dns-name>` for each name in the pod's `skein.io/dns-name`
 * annotation (comma-separated DNS labels), and `<pod>.<namespace>`; reverse
 * lookups of the pod's addresses give `<pod>.<namespace>`. All relative to the
 * Network's domain.
 */
import { BlockList, isIP } from "node:net";
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import type { Network } from "../../api/v1alpha1/index.ts";
import type { InformerHandlers } from "../../kit/k8s/informer.ts";
import { createLogger, type Logger } from "../../kit/log.ts";
import { canonicalAddress, isDnsLabel, isDomain, normaliseName } from "./names.ts";
import type { Zone } from "./query.ts";
import { type PodRecord, RecordStore } from "./records.ts";
import { parseUpstream, type Upstream } from "./upstream.ts";

export const DNS_NAME_ANNOTATION = "skein.io/dns-name";
export const PROBE_TCP_ANNOTATION = "skein.io/probe-tcp";
export const PROBE_HTTP_ANNOTATION = "skein.io/probe-http";
/** The pod condition (readiness-gate style) carrying the active probe's result. */
export const DNS_HEALTHY_CONDITION = "skein.io/dns-healthy";

export const DEFAULT_DOMAIN = "skein.local";
export const DEFAULT_TTL_SECONDS = 2;

/** Why a pod has no records: for logs and tests. */
export type Exclusion =
  | "Deleting"
  | "Finished"
  | "HostNetwork"
  | "NoAddress"
  | "NotReady"
  | "NotProbedHealthy"
  | "NodeGone";

export type PodVerdict = { record: PodRecord } | { excluded: Exclusion };

/** True when the pod's health includes the agent's active probe. */
export function wantsProbe(pod: V1Pod): boolean {
  const annotations = pod.metadata?.annotations ?? {};
  return (
    annotations[PROBE_TCP_ANNOTATION] !== undefined ||
    annotations[PROBE_HTTP_ANNOTATION] !== undefined ||
    (pod.spec?.readinessGates ?? []).some((g) => g.conditionType === DNS_HEALTHY_CONDITION)
  );
}

/** The valid names of the pod's `skein.io/dns-name` annotation, lowercased; invalid ones are left out. */
export function dnsNames(pod: V1Pod): string[] {
  const value = pod.metadata?.annotations?.[DNS_NAME_ANNOTATION];
  if (!value) return [];
  return [
    ...new Set(
      value
        .split(",")
        .map((n) => n.trim().toLowerCase())
        .filter(isDnsLabel),
    ),
  ];
}

function conditionTrue(pod: V1Pod, type: string): boolean {
  return (pod.status?.conditions ?? []).some((c) => c.type === type && c.status === "True");
}

/** The pod's records, or why it has none. `nodeGone(name)` says whether its node is gone. */
export function podRecord(pod: V1Pod, nodeGone: (node: string) => boolean): PodVerdict {
  const name = pod.metadata?.name ?? "";
  const namespace = pod.metadata?.namespace ?? "";
  if (pod.metadata?.deletionTimestamp) return { excluded: "Deleting" };
  const phase = pod.status?.phase;
  if (phase === "Succeeded" || phase === "Failed") return { excluded: "Finished" };
  if (pod.spec?.hostNetwork) return { excluded: "HostNetwork" };
  const listed = [...(pod.status?.podIPs ?? []).map((p) => p.ip), pod.status?.podIP];
  const addresses = [...new Set(listed.flatMap((a) => (a ? (canonicalAddress(a) ?? []) : [])))];
  if (addresses.length === 0) return { excluded: "NoAddress" };
  if (!conditionTrue(pod, "Ready")) return { excluded: "NotReady" };
  if (wantsProbe(pod) && !conditionTrue(pod, DNS_HEALTHY_CONDITION)) return { excluded: "NotProbedHealthy" };
  const node = pod.spec?.nodeName;
  if (!node || nodeGone(node)) return { excluded: "NodeGone" };
  const own = `${name}.${namespace}`;
  const names = own.split(".").every(isDnsLabel) ? [own] : [];
  return {
    record: { key: `${namespace}/${name}`, names: [...names, ...dnsNames(pod)], addresses, pointer: own },
  };
}

/** A node is gone when the API no longer has it, or its Ready condition is Unknown (it stopped reporting). */
export function nodeIsGone(node: V1Node | undefined): boolean {
  if (!node || node.metadata?.deletionTimestamp) return true;
  return (node.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "Unknown");
}

/** What PodRecords needs of an informer (the kit's Informer has it). */
export interface Source<T> {
  on(handlers: InformerHandlers<T>): void;
  get(key: string): T | undefined;
  list(): T[];
}

export interface DnsSettings {
  domain: string;
  ttlSeconds: number;
  upstreams: Upstream[];
  /** The overlay's CIDR, when known: reverse lookups inside it are answered here, and its clients are. */
  cidr?: string;
}

export interface PodRecordsOptions {
  pods: Source<V1Pod>;
  /** Without it, a pod's node is never taken as gone. */
  nodes?: Source<V1Node>;
  networks?: Source<Network>;
  /** The Network whose `dns` settings apply. */
  networkName?: string;
  /** Used where the Network says nothing (upstreams: the node's resolv.conf servers). */
  defaults?: Partial<DnsSettings>;
  /** Win over the Network (flags given to a standalone responder). */
  overrides?: Partial<DnsSettings>;
  logger?: Logger;
}

export class PodRecords implements Zone {
  readonly records = new RecordStore();
  private settings: DnsSettings;
  private owned = new BlockList();
  private settingsChanges = 0;
  private readonly log: Logger;

  constructor(private readonly options: PodRecordsOptions) {
    this.log = options.logger ?? createLogger("dns-records");
    this.settings = this.resolveSettings(undefined);
    this.applySettings(this.settings);
    options.pods.on({
      add: (pod) => this.refreshPod(pod),
      update: (_, pod) => this.refreshPod(pod),
      delete: (pod) => this.records.delete(podKey(pod)),
    });
    options.nodes?.on({
      add: (node) => this.refreshNode(node.metadata?.name),
      update: (old, node) => {
        if (nodeIsGone(old) !== nodeIsGone(node)) this.refreshNode(node.metadata?.name);
      },
      delete: (node) => this.refreshNode(node.metadata?.name),
    });
    const networkName = options.networkName;
    if (options.networks && networkName) {
      const networks = options.networks;
      const onNetwork = (network: Network) => {
        if (network.metadata?.name === networkName) this.updateSettings(networks.get(networkName));
      };
      networks.on({ add: onNetwork, update: (_, n) => onNetwork(n), delete: onNetwork });
    }
  }

  get domain(): string {
    return this.settings.domain;
  }

  get ttlSeconds(): number {
    return this.settings.ttlSeconds;
  }

  get version(): number {
    return this.records.version + this.settingsChanges;
  }

  ownsAddress(address: string): boolean {
    const family = isIP(address);
    return family !== 0 && this.owned.check(address, family === 4 ? "ipv4" : "ipv6");
  }

  upstreams(): readonly Upstream[] {
    return this.settings.upstreams;
  }

  /** Networks whose clients the responder answers (besides the node's own addresses). */
  allowedCidrs(): readonly string[] {
    return this.settings.cidr ? [this.settings.cidr] : [];
  }

  current(): Readonly<DnsSettings> {
    return this.settings;
  }

  private nodeGone = (name: string): boolean =>
    this.options.nodes ? nodeIsGone(this.options.nodes.get(name)) : false;

  private refreshPod(pod: V1Pod): void {
    const verdict = podRecord(pod, this.nodeGone);
    const key = podKey(pod);
    if ("record" in verdict) {
      this.records.set(verdict.record);
    } else if (this.records.has(key)) {
      this.log.debug({ pod: key, reason: verdict.excluded }, "pod leaves DNS answers");
      this.records.delete(key);
    }
  }

  private refreshNode(name: string | undefined): void {
    if (!name) return;
    for (const pod of this.options.pods.list()) if (pod.spec?.nodeName === name) this.refreshPod(pod);
  }

  private updateSettings(network: Network | undefined): void {
    const next = this.resolveSettings(network);
    if (JSON.stringify(next) === JSON.stringify(this.settings)) return;
    this.log.info(
      { domain: next.domain, ttlSeconds: next.ttlSeconds, upstreams: next.upstreams },
      "DNS settings changed",
    );
    this.settings = next;
    this.applySettings(next);
    this.settingsChanges++;
  }

  private applySettings(settings: DnsSettings): void {
    const owned = new BlockList();
    const [network = "", prefix = ""] = (settings.cidr ?? "").split("/");
    const family = isIP(network);
    if (family !== 0 && /^\d{1,3}$/.test(prefix))
      owned.addSubnet(network, Number(prefix), family === 4 ? "ipv4" : "ipv6");
    this.owned = owned;
  }

  /** Overrides, then the Network, then defaults; invalid values from the Network are skipped with a warning. */
  private resolveSettings(network: Network | undefined): DnsSettings {
    const { defaults = {}, overrides = {} } = this.options;
    const dns = network?.spec?.dns;
    const fromNetwork: Partial<DnsSettings> = {};
    if (dns?.domain !== undefined) {
      const domain = normaliseName(dns.domain);
      if (isDomain(domain)) fromNetwork.domain = domain;
      else this.log.warn({ domain: dns.domain }, "Network has an invalid DNS domain; using the default");
    }
    if (dns?.ttlSeconds !== undefined && Number.isInteger(dns.ttlSeconds) && dns.ttlSeconds >= 0) {
      fromNetwork.ttlSeconds = dns.ttlSeconds;
    }
    if (dns?.upstreams?.length) {
      const upstreams: Upstream[] = [];
      for (const text of dns.upstreams) {
        try {
          upstreams.push(parseUpstream(text));
        } catch {
          this.log.warn({ upstream: text }, "Network lists an invalid upstream; skipping it");
        }
      }
      if (upstreams.length) fromNetwork.upstreams = upstreams;
    }
    if (network?.spec?.cidr) fromNetwork.cidr = network.spec.cidr;
    const merged: DnsSettings = {
      domain: overrides.domain ?? fromNetwork.domain ?? defaults.domain ?? DEFAULT_DOMAIN,
      ttlSeconds:
        overrides.ttlSeconds ?? fromNetwork.ttlSeconds ?? defaults.ttlSeconds ?? DEFAULT_TTL_SECONDS,
      upstreams: overrides.upstreams ?? fromNetwork.upstreams ?? defaults.upstreams ?? [],
    };
    const cidr = overrides.cidr ?? fromNetwork.cidr ?? defaults.cidr;
    if (cidr) merged.cidr = cidr;
    return merged;
  }
}

function podKey(pod: V1Pod): string {
  return `${pod.metadata?.namespace ?? ""}/${pod.metadata?.name ?? ""}`;
}
