import { type Answer, decode, encode, type Packet } from "dns-packet";
import { describe, expect, it } from "vitest";
import { cacheableTtl, ForwardCache } from "./forward-cache.ts";
import { queryPacket } from "./testing.ts";

function response(
  query: Buffer,
  rcode: number,
  answers: Answer[],
  authorities: Answer[] = [],
  tc = false,
): Buffer {
  const q = decode(query);
  const packet: Packet = {
    type: "response",
    id: q.id ?? 0,
    flags: 0x0080 | rcode | (tc ? 0x0200 : 0),
    questions: q.questions ?? [],
    answers,
    authorities,
  };
  return encode(packet);
}

const soa = (ttl: number, minimum: number): Answer => ({
  type: "SOA",
  name: "org",
  ttl,
  data: { mname: "ns.org", rname: "h.org", serial: 1, refresh: 1, retry: 1, expire: 1, minimum },
});

describe("cacheableTtl", () => {
  const q = queryPacket("example.org", "A");
  it.each([
    [
      "positive: shortest TTL",
      response(q, 0, [
        { type: "A", name: "example.org", ttl: 30, data: "192.0.2.1" },
        { type: "A", name: "example.org", ttl: 10, data: "192.0.2.2" },
      ]),
      10,
    ],
    ["negative: SOA min(ttl, minimum)", response(q, 3, [], [soa(300, 60)]), 60],
    ["negative without SOA: never", response(q, 3, []), undefined],
    ["NODATA with SOA", response(q, 0, [], [soa(20, 900)]), 20],
    ["SERVFAIL: never", response(q, 2, []), undefined],
    [
      "truncated: never",
      response(q, 0, [{ type: "A", name: "example.org", ttl: 30, data: "192.0.2.1" }], [], true),
      undefined,
    ],
  ])("%s", (_, raw, want) => {
    expect(cacheableTtl(decode(raw), raw)).toBe(want);
  });
});

describe("ForwardCache", () => {
  it("answers a repeat with the new ID and TTLs aged by the time held", () => {
    let now = 1_000_000;
    const cache = new ForwardCache({ now: () => now });
    const q1 = queryPacket("example.org", "A", { id: 1 });
    cache.put(q1, response(q1, 0, [{ type: "A", name: "example.org", ttl: 30, data: "192.0.2.1" }]));
    const q2 = queryPacket("example.org", "A", { id: 2 });
    expect(decode(cache.get(q2, 512)!)).toMatchObject({ id: 2, answers: [{ ttl: 30 }] });
    now += 12_500;
    expect(decode(cache.get(q2, 512)!)).toMatchObject({ id: 2, answers: [{ ttl: 18, data: "192.0.2.1" }] });
    now += 18_000;
    expect(cache.get(q2, 512)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it("tells queries apart by type, case and flags", () => {
    const cache = new ForwardCache();
    const q = queryPacket("example.org", "A");
    cache.put(q, response(q, 0, [{ type: "A", name: "example.org", ttl: 30, data: "192.0.2.1" }]));
    expect(cache.get(queryPacket("example.org", "AAAA"), 512)).toBeUndefined();
    expect(cache.get(queryPacket("Example.org", "A"), 512)).toBeUndefined();
    expect(cache.get(queryPacket("example.org", "A", { edns: 1232 }), 512)).toBeUndefined();
  });

  it("caps TTLs and stays within its entry bound, dropping the least recently used", () => {
    let now = 0;
    const cache = new ForwardCache({ maxEntries: 3, maxTtlSeconds: 5, now: () => now });
    const names = ["a.org", "b.org", "c.org", "d.org"];
    for (const name of names.slice(0, 3)) {
      const q = queryPacket(name, "A");
      cache.put(q, response(q, 0, [{ type: "A", name, ttl: 3600, data: "192.0.2.1" }]));
    }
    cache.get(queryPacket("a.org", "A"), 512);
    const q = queryPacket("d.org", "A");
    cache.put(q, response(q, 0, [{ type: "A", name: "d.org", ttl: 3600, data: "192.0.2.1" }]));
    expect(cache.size).toBe(3);
    expect(cache.get(queryPacket("b.org", "A"), 512)).toBeUndefined();
    expect(cache.get(queryPacket("a.org", "A"), 512)).toBeDefined();
    now += 5_000;
    expect(cache.get(queryPacket("a.org", "A"), 512)).toBeUndefined();
  });

  it("keeps its byte bound", () => {
    const cache = new ForwardCache({ maxBytes: 2_000 });
    for (let i = 0; i < 100; i++) {
      const name = `n${i}.example.org`;
      const q = queryPacket(name, "A");
      cache.put(q, response(q, 0, [{ type: "A", name, ttl: 60, data: "192.0.2.1" }]));
    }
    expect(cache.size).toBeLessThan(30);
    expect(cache.size).toBeGreaterThan(0);
  });

  it("ignores undecodable responses", () => {
    const cache = new ForwardCache();
    cache.put(queryPacket("x.org", "A"), Buffer.from([1, 2, 3]));
    expect(cache.size).toBe(0);
  });
});
