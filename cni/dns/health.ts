/**
 * Active health for DNS answers: the agent on a pod's own node probes the pods
 * that ask for it (probe.ts) and writes the result to the pod's condition
 * `skein.io/dns-healthy` through the pods/status subresource, readiness-gate
 * style. Every node's responder then reads the same verdict from the API
 * server, so the pod leaves all answers at once, not just this node's.
 *
 * Each tick probes every such pod on this node (one probe per pod at a time,
 * a bounded number at once) and writes only when the verdict differs from
 * what the API server holds: a strategic-merge patch keyed by condition type,
 * so the kubelet's conditions are never replaced. This agent is the one
 * writer of that condition for pods on its node.
 */
import {
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from "@kubernetes/client-node";
import { describeError } from "../../kit/errors.ts";
import { formatTime } from "../../kit/k8s/conditions.ts";
import { createLogger, type Logger } from "../../kit/log.ts";
import { DNS_HEALTHY_CONDITION, type Source, wantsProbe } from "./pod-records.ts";
import { type ProbeResult, type ProbeSpec, probeSpecs, runProbe } from "./probe.ts";

export interface Verdict {
  status: "True" | "False";
  reason: "ProbeSucceeded" | "ProbeFailed" | "InvalidProbe";
  message: string;
}

/** The patch body that sets the condition (lastTransitionTime moves only when the status flips). */
export function conditionPatch(pod: V1Pod, verdict: Verdict, now: Date): object {
  const current = (pod.status?.conditions ?? []).find((c) => c.type === DNS_HEALTHY_CONDITION);
  const transition =
    current && current.status === verdict.status && current.lastTransitionTime
      ? new Date(current.lastTransitionTime)
      : now;
  return {
    status: {
      conditions: [
        {
          type: DNS_HEALTHY_CONDITION,
          status: verdict.status,
          reason: verdict.reason,
          message: verdict.message,
          lastProbeTime: null,
          lastTransitionTime: formatTime(transition),
        },
      ],
    },
  };
}

/** True when the pod already shows `verdict` (status and reason), so nothing needs writing. */
export function showsVerdict(pod: V1Pod, verdict: Verdict): boolean {
  const current = (pod.status?.conditions ?? []).find((c) => c.type === DNS_HEALTHY_CONDITION);
  return current?.status === verdict.status && current.reason === verdict.reason;
}

/** How long a written verdict may take to show in the informer before it is written again. */
const WRITE_SETTLE_MS = 2_000;

export interface HealthReporterOptions {
  node: string;
  pods: Source<V1Pod>;
  kubeConfig: KubeConfig;
  /** Time between probes of a pod; default 250 ms, so a failing pod leaves answers well within a second. */
  periodMs?: number;
  /** Longest wait for one probe; default 200 ms. */
  timeoutMs?: number;
  /** Probes at once on this node. */
  concurrency?: number;
  logger?: Logger;
  /** The probe; tests replace it. */
  probe?: (address: string, spec: ProbeSpec, timeoutMs: number) => Promise<ProbeResult>;
}

export class HealthReporter {
  private readonly core: CoreV1Api;
  private readonly log: Logger;
  private readonly busy = new Set<string>();
  /** The verdict last written per pod, until the informer shows it (so a slow watch causes no rewrite). */
  private readonly written = new Map<string, { verdict: Verdict; at: number }>();
  private timer: NodeJS.Timeout | undefined;
  private readonly periodMs: number;
  private readonly timeoutMs: number;
  private readonly concurrency: number;

  constructor(private readonly options: HealthReporterOptions) {
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.log = options.logger ?? createLogger("dns-health");
    this.periodMs = options.periodMs ?? 250;
    this.timeoutMs = options.timeoutMs ?? 200;
    this.concurrency = options.concurrency ?? 32;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.periodMs);
    this.tick();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    for (const [key, { at }] of this.written) {
      if (!this.options.pods.get(key) || Date.now() - at > WRITE_SETTLE_MS) this.written.delete(key);
    }
    for (const pod of this.options.pods.list()) {
      if (this.busy.size >= this.concurrency) return;
      if (pod.spec?.nodeName !== this.options.node || !wantsProbe(pod) || pod.metadata?.deletionTimestamp)
        continue;
      const address = pod.status?.podIP;
      const key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
      if (!address || this.busy.has(key)) continue;
      this.busy.add(key);
      this.check(key, pod, address)
        .catch((err: unknown) => this.log.warn({ pod: key, err: describeError(err) }, "health check failed"))
        .finally(() => this.busy.delete(key));
    }
  }

  private async check(key: string, pod: V1Pod, address: string): Promise<void> {
    const verdict = await this.verdict(pod, address);
    const latest = this.options.pods.get(key) ?? pod;
    if (showsVerdict(latest, verdict)) {
      this.written.delete(key);
      return;
    }
    const pending = this.written.get(key)?.verdict;
    if (pending && pending.status === verdict.status && pending.reason === verdict.reason) return;
    const name = latest.metadata?.name ?? "";
    const namespace = latest.metadata?.namespace ?? "";
    await this.core.patchNamespacedPodStatus(
      { name, namespace, body: conditionPatch(latest, verdict, new Date()) },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
    );
    this.written.set(key, { verdict, at: Date.now() });
    this.log.info({ pod: key, healthy: verdict.status, message: verdict.message }, "DNS health changed");
  }

  private async verdict(pod: V1Pod, address: string): Promise<Verdict> {
    const parsed = probeSpecs(pod);
    if ("error" in parsed) return { status: "False", reason: "InvalidProbe", message: parsed.error };
    const probe = this.options.probe ?? runProbe;
    const messages: string[] = [];
    for (const spec of parsed.specs) {
      const result = await probe(address, spec, this.timeoutMs);
      if (!result.ok) return { status: "False", reason: "ProbeFailed", message: result.message };
      messages.push(result.message);
    }
    return { status: "True", reason: "ProbeSucceeded", message: messages.join("; ") || "no probe asked for" };
  }
}
