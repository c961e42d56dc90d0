import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../kit/errors.ts";
import {
  skeinRoot,
  splitSnapshotName,
  validateDatasetName,
  validateHoldTag,
  validatePoolName,
  validateSnapshotName,
  validateUserPropertyName,
  validateUserPropertyValue,
  volumeDataset,
  volumeOfDataset,
  volumeSnapshot,
} from "./names.ts";

const long = (n: number) => "a".repeat(n);

function refused(fn: () => unknown, why: string | RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(InvalidInputError);
  expect((caught as Error).message).toMatch(why);
}

describe("pool names", () => {
  it.each(["tank", "pool1", "a", "t_a.n:k-2"])("accepts %j", (name) => {
    expect(validatePoolName(name)).toBe(name);
  });

  it.each([
    ["", /empty/],
    ["1tank", /start with a letter/],
    ["-tank", /start with a letter/],
    ["ta nk", /start with a letter/],
    ["tank/x", /start with a letter/],
    ["mirror", /reserved/],
    ["raidz2x", /reserved/],
    ["spare", /reserved/],
    ["log", /reserved/],
    ["c0t0d0", /disk devices/],
    [long(256), /longer than 255/],
  ])("refuses %j", (name, why) => refused(() => validatePoolName(name), why));
});

describe("dataset names", () => {
  it.each(["tank", "tank/skein", "tank/skein/pvc-1234.a_b:c"])("accepts %j", (name) => {
    expect(validateDatasetName(name)).toBe(name);
  });

  it.each([
    ["tank/", /empty component/],
    ["tank//x", /empty component/],
    ["/tank", /pool name "" is invalid: it is empty/],
    ["tank/-rf", /starts with '-'/],
    ["tank/a b", /may only contain/],
    ["tank/..", /not a valid component/],
    ["tank/./x", /not a valid component/],
    ["tank/x@snap", /may only contain/],
    ["tank/x#mark", /may only contain/],
    ["tank/x\ny", /may only contain/],
    ["tank/$(id)", /may only contain/],
    [`tank/${long(251)}`, /longer than 255/],
  ])("refuses %j", (name, why) => refused(() => validateDatasetName(name), why));

  it("accepts a name of exactly 255 characters", () => {
    const name = `tank/${long(250)}`;
    expect(validateDatasetName(name)).toBe(name);
  });
});

describe("snapshot names", () => {
  it("accepts dataset@snap", () => {
    expect(validateSnapshotName("tank/skein/v1@s-1")).toBe("tank/skein/v1@s-1");
    expect(splitSnapshotName("tank/skein/v1@s-1")).toEqual({ dataset: "tank/skein/v1", snapshot: "s-1" });
  });

  it.each([
    ["tank/v1", /no '@'/],
    ["tank/v1@", /empty component/],
    ["tank/v1@-r", /starts with '-'/],
    ["tank/v1@a@b", /may only contain/],
    ["tank/v1@a/b", /may only contain/],
    ["tank/-v@s", /starts with '-'/],
  ])("refuses %j", (name, why) => refused(() => validateSnapshotName(name), why));
});

describe("hold tags", () => {
  it("accepts a Skein tag", () => {
    expect(validateHoldTag("skein.io:migration-1")).toBe("skein.io:migration-1");
  });
  it.each([
    ["", /empty/],
    ["-r", /starts with '-'/],
    ["a b", /may only contain/],
  ])("refuses %j", (tag, why) => refused(() => validateHoldTag(tag), why));
});

describe("user properties", () => {
  it("accepts skein.io: names and plain values", () => {
    expect(validateUserPropertyName("skein.io:volume")).toBe("skein.io:volume");
    expect(validateUserPropertyValue("skein.io:volume", "ns/pvc 1 (ü)")).toBe("ns/pvc 1 (ü)");
  });

  it.each([
    ["volume", /must start with 'skein.io:'/],
    ["other.io:volume", /must start with 'skein.io:'/],
    ["skein.io:", /must start with 'skein.io:' followed by a name/],
    ["skein.io:Volume", /lowercase/],
    ["skein.io:a b", /lowercase/],
    [`skein.io:${long(250)}`, /longer than 255/],
  ])("refuses the name %j", (name, why) => refused(() => validateUserPropertyName(name), why));

  it.each([
    ["", /empty/],
    ["a\tb", /control character/],
    ["a\nb", /control character/],
    [long(1025), /longer than 1024 bytes/],
    ["é".repeat(513), /longer than 1024 bytes/],
  ])("refuses the value %j", (value, why) =>
    refused(() => validateUserPropertyValue("skein.io:x", value), why),
  );
});

describe("volume and snapshot layout", () => {
  it("puts volumes under <pool>/skein", () => {
    expect(skeinRoot("tank")).toBe("tank/skein");
    expect(volumeDataset("tank", "pvc-0a1b")).toBe("tank/skein/pvc-0a1b");
    expect(volumeSnapshot("tank", "pvc-0a1b", "snapshot-9")).toBe("tank/skein/pvc-0a1b@snapshot-9");
  });

  it.each([
    ["Pvc", /Volume name/],
    ["pvc_1", /Volume name/],
    ["-pvc", /Volume name/],
    ["pvc/x", /Volume name/],
    ["", /Volume name/],
    [long(254), /Volume name/],
    [long(250), /longer than 255/],
  ])("refuses the volume %j", (volume, why) => refused(() => volumeDataset("tank", volume), why));

  it("refuses a bad snapshot or pool name", () => {
    refused(() => volumeSnapshot("tank", "v", "Snap"), /Snapshot name/);
    refused(() => volumeDataset("1tank", "v"), /pool name/);
  });

  it.each([
    ["tank/skein/pvc-1", "pvc-1"],
    ["tank/skein", undefined],
    ["tank/skein/pvc-1@s", undefined],
    ["tank/skein/pvc-1/child", undefined],
    ["tank/other/pvc-1", undefined],
    ["tank2/skein/pvc-1", undefined],
    ["tank/skein/UPPER", undefined],
  ])("maps dataset %j back to volume %j", (dataset, volume) => {
    expect(volumeOfDataset("tank", dataset)).toBe(volume);
  });
});
