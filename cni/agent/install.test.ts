import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseSettings } from "../settings.ts";
import { buildConflist, CniInstaller, chainVersion, pluginVersions } from "./install.ts";
import { hostExec } from "./kernel.ts";

const settings = {
  version: 1 as const,
  network: "skein",
  networkCIDR: "10.32.0.0/16",
  blockCIDR: "10.32.1.0/24",
  gateway: "10.32.1.1",
  mtu: 1450,
  bridge: "skein0",
};

describe("buildConflist", () => {
  it("chains portmap after skein and leaves default paths out", () => {
    expect(
      JSON.parse(
        buildConflist({
          network: "skein",
          cniVersion: "1.1.0",
          settingsFile: "/run/skein/network.json",
          portmap: true,
        }),
      ),
    ).toEqual({
      cniVersion: "1.1.0",
      name: "skein",
      plugins: [{ type: "skein" }, { type: "portmap", capabilities: { portMappings: true }, snat: true }],
    });
  });

  it("names non-default paths and can leave portmap out", () => {
    expect(
      JSON.parse(
        buildConflist({
          network: "blue",
          cniVersion: "1.0.0",
          settingsFile: "/s.json",
          dataDir: "/d",
          portmap: false,
        }),
      ),
    ).toEqual({
      cniVersion: "1.0.0",
      name: "blue",
      plugins: [{ type: "skein", settingsFile: "/s.json", dataDir: "/d" }],
    });
  });
});

describe("chainVersion", () => {
  it.each<[string, string[][], string | undefined]>([
    ["skein alone speaks 1.1.0", [], "1.1.0"],
    ["a current portmap keeps 1.1.0", [["0.4.0", "1.0.0", "1.1.0"]], "1.1.0"],
    ["Debian's portmap (up to 1.0.0) brings the list down", [["0.3.1", "0.4.0", "1.0.0"]], "1.0.0"],
    ["a plugin sharing no version", [["0.2.0"]], undefined],
  ])("%s", (_what, chained, version) => {
    expect(chainVersion(chained)).toBe(version);
  });
});

describe("pluginVersions", () => {
  it("asks an installed plugin, and says undefined for a missing one", async () => {
    expect(await pluginVersions(hostExec, "/usr/lib/cni/portmap")).toContain("1.0.0");
    expect(await pluginVersions(hostExec, "/nonexistent/portmap")).toBeUndefined();
  });

  it("refuses an answer that is not a version list", async () => {
    // Programs that read stdin as plugins do (one that does not trips EPIPE in kit/exec).
    await expect(pluginVersions(hostExec, "/usr/bin/od")).rejects.toThrow(/other than JSON/);
    await expect(pluginVersions(hostExec, "/usr/bin/cat")).rejects.toThrow(
      /without a supportedVersions list/,
    );
  });
});

describe("CniInstaller", () => {
  let dir: string;
  let paths: { settingsFile: string; pluginSource: string; binDir: string; confDir: string };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "skein-install-"));
    paths = {
      settingsFile: join(dir, "run", "network.json"),
      pluginSource: join(dir, "skein-cni"),
      binDir: join(dir, "bin"),
      confDir: join(dir, "net.d"),
    };
    writeFileSync(paths.pluginSource, "plugin v1");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("writes settings, an executable plugin and the conflist, then nothing when unchanged", async () => {
    const installer = new CniInstaller(paths);
    const conflist = buildConflist({ network: "skein", cniVersion: "1.1.0", portmap: true });
    expect(await installer.install(settings, conflist)).toEqual([
      paths.settingsFile,
      join(paths.binDir, "skein"),
      join(paths.confDir, "10-skein.conflist"),
    ]);
    expect(parseSettings(readFileSync(paths.settingsFile, "utf8"), paths.settingsFile)).toEqual(settings);
    expect(statSync(join(paths.binDir, "skein")).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(paths.confDir, "10-skein.conflist"), "utf8")).toBe(conflist);
    expect(await installer.install(settings, conflist)).toEqual([]);
    // No temp files left behind by the atomic writes.
    expect(readdirSync(paths.confDir)).toEqual(["10-skein.conflist"]);
  });

  it("replaces a plugin whose content differs and restores a deleted one", async () => {
    const conflist = buildConflist({ network: "skein", cniVersion: "1.1.0", portmap: false });
    await new CniInstaller(paths).install(settings, conflist);
    writeFileSync(paths.pluginSource, "plugin v2");
    const upgraded = new CniInstaller(paths);
    expect(await upgraded.install(settings, conflist)).toEqual([join(paths.binDir, "skein")]);
    expect(readFileSync(join(paths.binDir, "skein"), "utf8")).toBe("plugin v2");
    rmSync(join(paths.binDir, "skein"));
    expect(await upgraded.install(settings, conflist)).toEqual([join(paths.binDir, "skein")]);
  });

  it("refuses settings the plugin could not read, and writes nothing", async () => {
    await expect(
      new CniInstaller(paths).install({ ...settings, gateway: "10.99.0.1" }, "{}"),
    ).rejects.toThrow(/gateway/);
    expect(() => statSync(paths.confDir)).toThrow();
  });
});
