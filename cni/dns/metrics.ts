/**
 * The responder's Prometheus metrics, registered on the registry its host
 * passes in (the node network agent's), so one /metrics serves them all.
 * Label children used on the hot path are made once here.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { RCODE_NAMES } from "./query.ts";

export type DropReason = "short" | "response" | "client" | "overload" | "error";

export class DnsMetrics {
  readonly queries: Counter<"transport">;
  readonly responses: Counter<"rcode">;
  readonly dropped: Counter<"reason">;
  readonly answerRecords: Counter;
  readonly upstreamSeconds: Histogram<"result">;
  readonly forwardCache: Counter<"result">;
  readonly names: Gauge;
  readonly addresses: Gauge;
  readonly pods: Gauge;
  private readonly byRcode = new Map<number, Counter.Internal>();
  readonly udpQueries: Counter.Internal;
  readonly tcpQueries: Counter.Internal;

  /** `counts` is read at each scrape. */
  constructor(registry: Registry, counts: () => { pods: number; names: number; addresses: number }) {
    const registers = [registry];
    this.queries = new Counter({
      name: "skein_dns_queries_total",
      help: "DNS queries received, by transport",
      labelNames: ["transport"] as const,
      registers,
    });
    this.responses = new Counter({
      name: "skein_dns_responses_total",
      help: "DNS responses sent, by result code (local answers and relayed upstream answers)",
      labelNames: ["rcode"] as const,
      registers,
    });
    this.dropped = new Counter({
      name: "skein_dns_dropped_total",
      help: "Queries left unanswered: too short, a response, a client outside the overlay and node, overload, internal error",
      labelNames: ["reason"] as const,
      registers,
    });
    this.answerRecords = new Counter({
      name: "skein_dns_answer_records_total",
      help: "Records served in local answers",
      registers,
    });
    this.upstreamSeconds = new Histogram({
      name: "skein_dns_upstream_duration_seconds",
      help: "Time to get an answer from upstream servers, by result (ok, timeout, error, refused)",
      labelNames: ["result"] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.forwardCache = new Counter({
      name: "skein_dns_forward_cache_total",
      help: "Lookups of forwarded names in the answer cache, by result (hit, miss)",
      labelNames: ["result"] as const,
      registers,
    });
    this.names = new Gauge({
      name: "skein_dns_names",
      help: "Names under the domain that have healthy pods",
      registers,
      collect() {
        this.set(counts().names);
      },
    });
    this.addresses = new Gauge({
      name: "skein_dns_records",
      help: "Address records served (one per name and healthy pod address)",
      registers,
      collect() {
        this.set(counts().addresses);
      },
    });
    this.pods = new Gauge({
      name: "skein_dns_pods",
      help: "Healthy pods with records",
      registers,
      collect() {
        this.set(counts().pods);
      },
    });
    for (const [code, name] of Object.entries(RCODE_NAMES)) {
      this.byRcode.set(Number(code), this.responses.labels(name));
    }
    this.udpQueries = this.queries.labels("udp");
    this.tcpQueries = this.queries.labels("tcp");
  }

  response(rcode: number): void {
    const child = this.byRcode.get(rcode);
    if (child) child.inc();
    else this.responses.labels(RCODE_NAMES[rcode] ?? `RCODE${rcode}`).inc();
  }

  /** The rcode of a relayed upstream answer, read from its header. */
  relayed(message: Buffer): void {
    if (message.length >= 4) this.response(message[3]! & 0xf);
  }
}
