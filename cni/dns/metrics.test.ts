import { AggregatorRegistry, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { DnsMetrics } from "./metrics.ts";
import { RCODE } from "./query.ts";

/** One worker's metrics after it answered `queries` queries and dropped `dropped` from strangers. */
async function worker(queries: number, dropped: number) {
  const registry = new Registry();
  const metrics = new DnsMetrics(registry, () => ({ pods: 3, names: 2, addresses: 5 }));
  for (let i = 0; i < queries; i++) {
    metrics.query("udp");
    metrics.response(RCODE.NOERROR);
  }
  for (let i = 0; i < dropped; i++) metrics.drop("client");
  return registry.getMetricsAsJSON();
}

function value(text: string, line: string): number {
  const match = new RegExp(`^${line.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(text);
  return match ? Number(match[1]) : Number.NaN;
}

describe("DnsMetrics", () => {
  it("publishes per-query counts at scrape time", async () => {
    const registry = new Registry();
    const metrics = new DnsMetrics(registry, () => ({ pods: 1, names: 1, addresses: 1 }));
    metrics.query("tcp");
    metrics.response(RCODE.NXDOMAIN);
    metrics.drop("short");
    metrics.drop("short");
    const text = await registry.metrics();
    expect(value(text, 'skein_dns_queries_total{transport="tcp"}')).toBe(1);
    expect(value(text, 'skein_dns_responses_total{rcode="NXDOMAIN"}')).toBe(1);
    expect(value(text, 'skein_dns_dropped_total{reason="short"}')).toBe(2);
    // Scraping twice counts nothing twice.
    expect(value(await registry.metrics(), 'skein_dns_dropped_total{reason="short"}')).toBe(2);
  });

  it("sums counters across workers but reports the records every worker holds once", async () => {
    const merged = AggregatorRegistry.aggregate([await worker(4, 1), await worker(6, 2)]);
    const text = await merged.metrics();
    expect(value(text, 'skein_dns_queries_total{transport="udp"}')).toBe(10);
    expect(value(text, 'skein_dns_responses_total{rcode="NOERROR"}')).toBe(10);
    expect(value(text, 'skein_dns_dropped_total{reason="client"}')).toBe(3);
    expect(value(text, "skein_dns_pods")).toBe(3);
    expect(value(text, "skein_dns_names")).toBe(2);
    expect(value(text, "skein_dns_records")).toBe(5);
  });
});
