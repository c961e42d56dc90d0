import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type NodeSettings,
  parseSettings,
  readSettings,
  SettingsInvalidError,
  SettingsMissingError,
  validateSettings,
  writeSettings,
} from "./settings.ts";

const good: NodeSettings = {
  version: 1,
  network: "skein",
  networkCIDR: "10.32.0.0/12",
  blockCIDR: "10.32.1.0/24",
  gateway: "10.32.1.1",
  mtu: 1450,
  bridge: "skein0",
};

describe("validateSettings", () => {
  it("accepts well-formed settings", () => {
    expect(validateSettings(good)).toEqual({ settings: good });
  });

  it.each<[string, unknown, RegExp]>([
    ["not an object", [], /not a JSON object/],
    ["a newer version", { ...good, version: 2 }, /version is 2.*same release/],
    ["a missing version", { ...good, version: undefined }, /version is undefined/],
    ["an unknown field", { ...good, colour: "blue" }, /unknown fields: colour/],
    ["a missing network", { ...good, network: undefined }, /network must be a string/],
    ["a bad network name", { ...good, network: "-x" }, /network "-x" is not a valid name/],
    ["a bad bridge name", { ...good, bridge: "a/b" }, /bridge name "a\/b" contains/],
    ["a too long bridge name", { ...good, bridge: "skein0123456789x" }, /longer than 15/],
    ["a fractional mtu", { ...good, mtu: 1450.5 }, /mtu 1450.5 must be an integer/],
    ["a tiny mtu", { ...good, mtu: 67 }, /mtu 67/],
    ["a bad network CIDR", { ...good, networkCIDR: "10.32.0.0" }, /not an IPv4 CIDR/],
    ["host bits in the block", { ...good, blockCIDR: "10.32.1.3/24" }, /host bits/],
    ["a block outside the network", { ...good, blockCIDR: "10.64.1.0/24" }, /not inside networkCIDR/],
    ["a block larger than the network", { ...good, blockCIDR: "10.0.0.0/8" }, /not inside networkCIDR/],
    ["a /31 block", { ...good, blockCIDR: "10.32.1.0/31", gateway: "10.32.1.1" }, /too small/],
    [
      "a gateway outside the block",
      { ...good, gateway: "10.32.2.1" },
      /gateway 10.32.2.1 must be a host address/,
    ],
    ["the block address as gateway", { ...good, gateway: "10.32.1.0" }, /must be a host address/],
    ["the broadcast address as gateway", { ...good, gateway: "10.32.1.255" }, /must be a host address/],
    ["a gateway that is no address", { ...good, gateway: "gw" }, /not an IPv4 address/],
  ])("rejects %s", (_what, value, problem) => {
    const checked = validateSettings(value);
    expect("problem" in checked && checked.problem).toMatch(problem);
  });

  it("reports text that is not JSON", () => {
    expect(() => parseSettings("{", "/x")).toThrow(SettingsInvalidError);
    expect(() => parseSettings("{", "/x")).toThrow(/\/x is invalid: it is not JSON/);
  });
});

describe("settings file", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "skein-settings-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("says the agent is not ready when the file is absent", async () => {
    await expect(readSettings(join(dir, "network.json"))).rejects.toBeInstanceOf(SettingsMissingError);
  });

  it("round-trips through writeSettings, creating the directory and leaving no temp files", async () => {
    const path = join(dir, "run", "network.json");
    await writeSettings(good, path);
    await writeSettings({ ...good, mtu: 1400 }, path);
    expect(await readSettings(path)).toEqual({ ...good, mtu: 1400 });
    expect(await readdir(join(dir, "run"))).toEqual(["network.json"]);
  });

  it("refuses to write invalid settings and keeps the old file", async () => {
    const path = join(dir, "network.json");
    await writeSettings(good, path);
    await expect(writeSettings({ ...good, gateway: "10.99.0.1" }, path)).rejects.toThrow(/gateway/);
    expect(JSON.parse(await readFile(path, "utf8"))).toEqual(good);
  });

  it("rejects a file the agent of another release wrote", async () => {
    const path = join(dir, "network.json");
    await writeFile(path, JSON.stringify({ ...good, version: 2 }));
    await expect(readSettings(path)).rejects.toThrow(/version is 2/);
  });
});
