import { describe, expect, it } from "vitest";
import { compareAddresses, type PodRecord, RecordStore, rotate } from "./records.ts";

function pod(name: string, addresses: string[], names: string[] = ["web"]): PodRecord {
  return {
    key: `default/${name}`,
    names: [...names, `${name}.default`],
    addresses,
    pointer: `${name}.default`,
  };
}

describe("rotate", () => {
  it.each([
    [[1, 2, 3], 0, [1, 2, 3]],
    [[1, 2, 3], 1, [2, 3, 1]],
    [[1, 2, 3], 5, [3, 1, 2]],
    [[1, 2, 3], -1, [3, 1, 2]],
    [[], 3, []],
  ])("%j by %d → %j", (list, start, want) => {
    expect(rotate(list, start)).toEqual(want);
  });
});

describe("compareAddresses", () => {
  it("orders IPv4 numerically", () => {
    expect(["10.0.0.10", "10.0.0.9", "9.0.0.1"].sort(compareAddresses)).toEqual([
      "9.0.0.1",
      "10.0.0.9",
      "10.0.0.10",
    ]);
  });
});

describe("RecordStore", () => {
  it("answers a shared name with every member's address in one base order", () => {
    const store = new RecordStore();
    store.set(pod("b", ["10.0.0.10"]));
    store.set(pod("a", ["10.0.0.9"]));
    store.set(pod("c", ["10.0.0.11", "fd00::11"]));
    expect(store.lookup("web")).toMatchObject({
      v4: ["10.0.0.9", "10.0.0.10", "10.0.0.11"],
      v6: ["fd00::11"],
    });
    expect(store.lookup("a.default")).toMatchObject({ v4: ["10.0.0.9"], v6: [] });
  });

  it("gives every member the first place equally often", () => {
    const store = new RecordStore();
    for (let i = 1; i <= 3; i++) store.set(pod(`p${i}`, [`10.0.0.${i}`]));
    const first = new Map<string, number>();
    const addresses = store.lookup("web")!.v4;
    for (let i = 0; i < 300; i++) {
      const at = store.nextRotation("web", 4);
      const a = rotate(addresses, at)[0]!;
      first.set(a, (first.get(a) ?? 0) + 1);
    }
    expect([...first.values()]).toEqual([100, 100, 100]);
  });

  it("rotates A and AAAA with separate counters, so paired lookups still rotate", () => {
    const store = new RecordStore();
    store.set(pod("a", ["10.0.0.1", "fd00::1"]));
    store.set(pod("b", ["10.0.0.2", "fd00::2"]));
    const starts: number[] = [];
    for (let i = 0; i < 4; i++) {
      starts.push(store.nextRotation("web", 4));
      store.nextRotation("web", 6);
    }
    expect(starts).toEqual([0, 1, 0, 1]);
  });

  it("drops a deleted pod's names, parents and pointers, and says so in the version", () => {
    const store = new RecordStore();
    store.set({
      key: "prod/db-0",
      names: ["db-0.prod", "db"],
      addresses: ["10.0.0.5"],
      pointer: "db-0.prod",
    });
    const v = store.version;
    expect(store.lookup("prod")).toEqual({ v4: [], v6: [] });
    expect(store.pointersOf("10.0.0.5")).toEqual(["db-0.prod"]);
    store.delete("prod/db-0");
    expect(store.version).toBeGreaterThan(v);
    expect(store.lookup("db")).toBeUndefined();
    expect(store.lookup("prod")).toBeUndefined();
    expect(store.lookup("db-0.prod")).toBeUndefined();
    expect(store.pointersOf("10.0.0.5")).toEqual([]);
    expect(store.counts()).toEqual({ pods: 0, names: 0, addresses: 0 });
  });

  it("keeps a parent while another name holds it up", () => {
    const store = new RecordStore();
    store.set(pod("a", ["10.0.0.1"], []));
    store.set(pod("b", ["10.0.0.2"], []));
    store.delete("default/a");
    expect(store.lookup("default")).toEqual({ v4: [], v6: [] });
    store.delete("default/b");
    expect(store.lookup("default")).toBeUndefined();
  });

  it("moves a pod from one name to another on update", () => {
    const store = new RecordStore();
    store.set(pod("a", ["10.0.0.1"], ["web"]));
    store.set(pod("a", ["10.0.0.1"], ["api"]));
    expect(store.lookup("web")).toBeUndefined();
    expect(store.lookup("api")?.v4).toEqual(["10.0.0.1"]);
  });

  it("does not move the version for an unchanged record", () => {
    const store = new RecordStore();
    store.set(pod("a", ["10.0.0.1"]));
    const v = store.version;
    store.set(pod("a", ["10.0.0.1"]));
    store.delete("default/missing");
    expect(store.version).toBe(v);
  });

  it("returns rotation 0 for unknown names", () => {
    expect(new RecordStore().nextRotation("nope", 4)).toBe(0);
  });
});
