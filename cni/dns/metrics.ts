/**
 * The responder's Prometheus metrics, registered on the registry its host
 * passes in (the node network agent's), so one /metrics serves them all.
 *
 * The per-query counters are plain numbers, published at scrape time:
 * prom-client hashes the label set on every increment, which would cost more
 * than answering a cached query.
 *
 * Answering workers (workers.ts) are scraped together: counters add up, and
 * the record gauges take the largest worker's value, since every worker
 * holds the same records.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { RCODE_NAMES } from "./query.ts";

/** Extended rcodes are 12 bits (RFC 6891); the responder sends only the first few. */
const RCODE_SLOTS = 4096;

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
  private readonly counts = {
    udp: 0,
    tcp: 0,
    records: 0,
    byRcode: new Array<number>(RCODE_SLOTS).fill(0),
    dropped: { short: 0, response: 0, client: 0, overload: 0, error: 0 } satisfies Record<DropReason, number>,
  };

  /** `counts` is read at each scrape. */
  constructor(registry: Registry, counts: () => { pods: number; names: number; addresses: number }) {
    const registers = [registry];
    this.queries = new Counter({
      name: "skein_dns_queries_total",
      help: "DNS queries received, by transport",
      labelNames: ["transport"] as const,
      registers,
      collect: () => {
        this.queries.reset();
        this.queries.labels("udp").inc(this.counts.udp);
        this.queries.labels("tcp").inc(this.counts.tcp);
      },
    });
    this.responses = new Counter({
      name: "skein_dns_responses_total",
      help: "DNS responses sent, by result code (local answers and relayed upstream answers)",
      labelNames: ["rcode"] as const,
      registers,
      collect: () => {
        this.responses.reset();
        this.counts.byRcode.forEach((count, code) => {
          if (count > 0) this.responses.labels(RCODE_NAMES[code] ?? `RCODE${code}`).inc(count);
        });
      },
    });
    this.dropped = new Counter({
      name: "skein_dns_dropped_total",
      help: "Queries left unanswered: too short, a response, a client outside the overlay and node, overload, internal error",
      labelNames: ["reason"] as const,
      registers,
      collect: () => {
        this.dropped.reset();
        for (const [reason, count] of Object.entries(this.counts.dropped))
          if (count > 0) this.dropped.labels(reason).inc(count);
      },
    });
    this.answerRecords = new Counter({
      name: "skein_dns_answer_records_total",
      help: "Records served in local answers",
      registers,
      collect: () => {
        this.answerRecords.reset();
        this.answerRecords.inc(this.counts.records);
      },
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
      aggregator: "max",
      help: "Names under the domain that have healthy pods",
      registers,
      collect() {
        this.set(counts().names);
      },
    });
    this.addresses = new Gauge({
      name: "skein_dns_records",
      aggregator: "max",
      help: "Address records served (one per name and healthy pod address)",
      registers,
      collect() {
        this.set(counts().addresses);
      },
    });
    this.pods = new Gauge({
      name: "skein_dns_pods",
      aggregator: "max",
      help: "Healthy pods with records",
      registers,
      collect() {
        this.set(counts().pods);
      },
    });
  }

  query(transport: "udp" | "tcp"): void {
    this.counts[transport]++;
  }

  drop(reason: DropReason): void {
    this.counts.dropped[reason]++;
  }

  response(rcode: number): void {
    this.counts.byRcode[rcode & (RCODE_SLOTS - 1)]!++;
  }

  served(records: number): void {
    this.counts.records += records;
  }

  /** The rcode of a relayed upstream answer, read from its header. */
  relayed(message: Buffer): void {
    if (message.length >= 4) this.response(message[3]! & 0xf);
  }
}
