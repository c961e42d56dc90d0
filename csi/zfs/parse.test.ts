import { describe, expect, it } from "vitest";
import {
  groupByName,
  isSet,
  parseBytes,
  parseGetOutput,
  parseHoldsOutput,
  parseHumanSize,
  parseListOutput,
} from "./parse.ts";

describe("zfs get -H -p output", () => {
  const out =
    "p/skein/v1\trefquota\t10485760\tlocal\n" +
    "p/skein/v1\tskein.io:volume\tpvc 1\tlocal\n" +
    "p/skein/v1\tskein.io:owner\t-\t-\n" +
    "p/skein/v1\tmountpoint\tnone\tinherited from p\n" +
    "p/skein/v2\tused\t114688\t-\n";

  it("reads rows and groups them by dataset", () => {
    const rows = parseGetOutput(out);
    expect(rows[1]).toEqual({
      name: "p/skein/v1",
      property: "skein.io:volume",
      value: "pvc 1",
      source: "local",
    });
    const byName = groupByName(rows);
    expect([...byName.keys()]).toEqual(["p/skein/v1", "p/skein/v2"]);
    expect(byName.get("p/skein/v1")?.get("mountpoint")?.source).toBe("inherited from p");
  });

  it("tells an unset user property from a set one", () => {
    const v1 = groupByName(parseGetOutput(out)).get("p/skein/v1");
    expect(isSet(v1?.get("skein.io:volume"))).toBe(true);
    expect(isSet(v1?.get("skein.io:owner"))).toBe(false);
    expect(isSet(v1?.get("skein.io:absent"))).toBe(false);
  });

  it("refuses a line with the wrong number of columns", () => {
    expect(() => parseGetOutput("p/v\tused\t1\n")).toThrow(/unexpected zfs get output line/);
  });

  it("reads nothing from empty output", () => {
    expect(parseGetOutput("")).toEqual([]);
  });
});

describe("zfs list -H output", () => {
  it("keys columns by name", () => {
    expect(parseListOutput("p/v\tfilesystem\np/v@s\tsnapshot\n", ["name", "type"])).toEqual([
      { name: "p/v", type: "filesystem" },
      { name: "p/v@s", type: "snapshot" },
    ]);
  });
  it("refuses a short line", () => {
    expect(() => parseListOutput("p/v\n", ["name", "type"])).toThrow(/zfs list/);
  });
});

describe("zfs holds -H output", () => {
  it("reads snapshot, tag and time", () => {
    expect(parseHoldsOutput("p/v@s\tkeep\tTue Nov 24 22:10 2026\n")).toEqual([
      { snapshot: "p/v@s", tag: "keep", created: "Tue Nov 24 22:10 2026" },
    ]);
  });
});

describe("sizes", () => {
  it.each([
    ["0", 0],
    ["10485760", 10485760],
    ["-", undefined],
    ["none", undefined],
  ])("exact %j → %j", (text, bytes) => {
    expect(parseBytes(text)).toBe(bytes);
  });

  it("refuses a non-number where bytes are expected", () => {
    expect(() => parseBytes("1.5G")).toThrow(/byte count/);
  });

  it.each([
    ["0", 0],
    ["512", 512],
    ["544K", 544 * 1024],
    ["123M", 123 * 1024 ** 2],
    ["1.50G", 1.5 * 1024 ** 3],
    ["2T", 2 * 1024 ** 4],
    ["-", undefined],
  ])("rounded %j → %j", (text, bytes) => {
    expect(parseHumanSize(text)).toBe(bytes);
  });

  it("refuses an unknown unit", () => {
    expect(() => parseHumanSize("12Q")).toThrow(/size like/);
  });
});
