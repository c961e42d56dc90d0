import { describe, expect, it } from "vitest";
import { AnswerCache, type CachedAnswer } from "./answer-cache.ts";
import { queryPacket } from "./testing.ts";

function answer(size = 40): CachedAnswer & { builds: number[] } {
  const builds: number[] = [];
  return {
    rcode: 0,
    records: 1,
    rotation: { name: "web", family: 4, variants: 3 },
    build(rotation) {
      builds.push(rotation);
      return Buffer.alloc(size, rotation);
    },
    encodings: [],
    builds,
  };
}

describe("AnswerCache", () => {
  it("finds an answer by the query's bytes whatever its ID, and not for another question", () => {
    const cache = new AnswerCache();
    const kept = answer();
    expect(cache.get(queryPacket("web.skein.local", "A", { id: 1 }), 7)).toBeUndefined();
    cache.set(queryPacket("web.skein.local", "A", { id: 1 }), 7, kept);
    expect(cache.get(queryPacket("web.skein.local", "A", { id: 2 }), 7)).toBe(kept);
    expect(cache.get(queryPacket("web.skein.local", "AAAA", { id: 2 }), 7)).toBeUndefined();
    expect(cache.get(queryPacket("WEB.skein.local", "A", { id: 2 }), 7)).toBeUndefined();
    expect(cache.get(queryPacket("web.skein.local", "A", { id: 2, edns: 1232 }), 7)).toBeUndefined();
  });

  it("forgets everything when the zone's version moves, and keeps nothing for an old version", () => {
    const cache = new AnswerCache();
    const query = queryPacket("web.skein.local", "A");
    cache.get(query, 1);
    cache.set(query, 1, answer());
    expect(cache.get(query, 2)).toBeUndefined();
    cache.set(query, 1, answer());
    expect(cache.get(query, 2)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it("builds each rotation's encoding once", () => {
    const cache = new AnswerCache();
    const kept = answer();
    for (const rotation of [0, 1, 2, 0, 1, 2, 1]) expect(cache.encoding(kept, rotation)[0]).toBe(rotation);
    expect(kept.builds).toEqual([0, 1, 2]);
  });

  it("stays within its entry bound under a flood of distinct names", () => {
    const cache = new AnswerCache(1024 * 1024, 100);
    cache.get(queryPacket("x.skein.local", "A"), 1);
    for (let i = 0; i < 1_000; i++) {
      cache.set(queryPacket(`flood-${i}.skein.local`, "A"), 1, answer());
      expect(cache.size).toBeLessThanOrEqual(100);
    }
    // It starts over rather than refusing: the newest names are answered from it.
    expect(cache.get(queryPacket("flood-999.skein.local", "A"), 1)).toBeDefined();
  });

  it("stays within its byte bound, counting encodings too", () => {
    const cache = new AnswerCache(10_000, 1_000);
    cache.get(queryPacket("x.skein.local", "A"), 1);
    for (let i = 0; i < 200; i++) {
      const kept = answer(500);
      cache.set(queryPacket(`big-${i}.skein.local`, "A"), 1, kept);
      cache.encoding(kept, 0);
    }
    // 500-byte encodings plus keys: about 17 fit in 10 000 bytes.
    expect(cache.size).toBeLessThanOrEqual(20);
    expect(cache.size).toBeGreaterThan(0);
  });
});
