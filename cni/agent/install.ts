/**
 * Puts the node's CNI configuration in place for the container runtime: the
 * settings file the plugin reads, the plugin executable, and the `.conflist`.
 * Each is written atomically (temp file, fsync, rename), and in that order:
 * the runtime picks a network as soon as a conflist appears, so the conflist
 * comes last, when everything it points at is already there.
 */
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../../kit/atomic-file.ts";
import { SkeinError } from "../../kit/errors.ts";
import { compareVersions, SUPPORTED_VERSIONS } from "../plugin/result.ts";
import { DEFAULT_SETTINGS_PATH, type NodeSettings, writeSettings } from "../settings.ts";
import type { Exec } from "./kernel.ts";

export const CONFLIST_NAME = "10-skein.conflist";
export const PLUGIN_NAME = "skein";
export const PORTMAP = "portmap";

/**
 * The conflist's cniVersion: the newest that skein and every chained plugin
 * speak (the runtime hands that one version to each plugin of the list). With
 * an older portmap (Debian's 1.1 speaks up to 1.0.0) the node loses STATUS and
 * GC, not hostPorts. Undefined when they share none.
 */
export function chainVersion(chained: readonly (readonly string[])[]): string | undefined {
  const common = SUPPORTED_VERSIONS.filter((v) => chained.every((supported) => supported.includes(v)));
  return [...common].sort(compareVersions).at(-1);
}

export interface ConflistOptions {
  network: string;
  cniVersion: string;
  /** Written only when not the plugin's default, so the usual conflist stays minimal. */
  settingsFile?: string;
  /** Where the plugin keeps its address records; the plugin's default when absent. */
  dataDir?: string;
  /** Chain the reference `portmap` plugin (hostPort support). */
  portmap: boolean;
}

/** The network configuration list the runtime reads (pure). */
export function buildConflist(options: ConflistOptions): string {
  const skein: Record<string, unknown> = { type: PLUGIN_NAME };
  if (options.settingsFile !== undefined && options.settingsFile !== DEFAULT_SETTINGS_PATH) {
    skein.settingsFile = options.settingsFile;
  }
  if (options.dataDir !== undefined) skein.dataDir = options.dataDir;
  const plugins: Record<string, unknown>[] = [skein];
  // snat: hairpin and node-local connections to a hostPort need their source rewritten to come back.
  if (options.portmap) plugins.push({ type: PORTMAP, capabilities: { portMappings: true }, snat: true });
  return `${JSON.stringify({ cniVersion: options.cniVersion, name: options.network, plugins }, null, 2)}\n`;
}

/** The versions a CNI plugin executable says it speaks (CNI_COMMAND=VERSION); undefined when it is not installed. */
export async function pluginVersions(exec: Exec, path: string): Promise<string[] | undefined> {
  const installed = await stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
  if (!installed) return undefined;
  const { stdout } = await exec([path], {
    env: { CNI_COMMAND: "VERSION" },
    input: JSON.stringify({ cniVersion: "0.4.0" }),
    timeoutMs: 10_000,
  });
  let answer: { supportedVersions?: unknown };
  try {
    answer = JSON.parse(stdout) as { supportedVersions?: unknown };
  } catch (cause) {
    throw new SkeinError("BadPluginVersion", `${path} answered VERSION with something other than JSON`, {
      cause,
    });
  }
  const versions = answer.supportedVersions;
  if (!Array.isArray(versions) || !versions.every((v) => typeof v === "string")) {
    throw new SkeinError("BadPluginVersion", `${path} answered VERSION without a supportedVersions list`);
  }
  return versions;
}

export interface InstallPaths {
  settingsFile: string;
  /** The plugin executable to install (a single executable; see scripts/build-cni.mjs). */
  pluginSource: string;
  binDir: string;
  confDir: string;
}

async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

const digest = (data: Buffer) => createHash("sha256").update(data).digest("hex");

/**
 * Writes whatever differs from what is on disk; returns what it wrote. The
 * plugin executable is compared by content, so an upgraded image replaces it
 * and an unchanged one is not rewritten on every resync.
 */
export class CniInstaller {
  private installedPluginDigest: string | undefined;

  constructor(private readonly paths: InstallPaths) {}

  async install(settings: NodeSettings, conflist: string): Promise<string[]> {
    const written: string[] = [];
    const settingsText = await readIfExists(this.paths.settingsFile);
    if (settingsText?.toString("utf8") !== `${JSON.stringify(settings, null, 2)}\n`) {
      await writeSettings(settings, this.paths.settingsFile);
      written.push(this.paths.settingsFile);
    }
    const pluginPath = join(this.paths.binDir, PLUGIN_NAME);
    if (await this.pluginNeedsInstall(pluginPath)) {
      const binary = await readFile(this.paths.pluginSource);
      await writeFileAtomic(pluginPath, binary, 0o755);
      this.installedPluginDigest = digest(binary);
      written.push(pluginPath);
    }
    const conflistPath = join(this.paths.confDir, CONFLIST_NAME);
    if ((await readIfExists(conflistPath))?.toString("utf8") !== conflist) {
      await writeFileAtomic(conflistPath, conflist);
      written.push(conflistPath);
    }
    return written;
  }

  /** Hashes the installed file once per process; after that only checks it is still there. */
  private async pluginNeedsInstall(pluginPath: string): Promise<boolean> {
    if (this.installedPluginDigest !== undefined) {
      return stat(pluginPath).then(
        () => false,
        () => true,
      );
    }
    const installed = await readIfExists(pluginPath);
    if (!installed) return true;
    const source = await readFile(this.paths.pluginSource);
    const same = digest(installed) === digest(source);
    if (same) this.installedPluginDigest = digest(source);
    return !same;
  }
}
