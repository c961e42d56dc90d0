/**
 * What the runtime asks for: the CNI_* environment and the network
 * configuration on stdin, parsed and validated before anything is touched, so
 * bad input gets the spec's error code and changes nothing.
 */
import { isAbsolute } from "node:path";
import { interfaceNameProblem } from "../netlink/ifname.ts";
import { CniCode, CniError } from "./errors.ts";
import { compareVersions, type Dns, parsePrevResult, type Result, SUPPORTED_VERSIONS } from "./result.ts";

export const COMMANDS = ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"] as const;
export type Command = (typeof COMMANDS)[number];

export const PLUGIN_TYPE = "skein";
export const DEFAULT_DATA_DIR = "/var/lib/cni/skein";

/** One container interface on the network: the key of everything the plugin keeps. */
export interface Attachment {
  containerID: string;
  ifname: string;
}

export interface Invocation {
  command: Command;
  containerID?: string;
  netns?: string;
  ifname?: string;
  args: Record<string, string>;
  path?: string;
}

export interface NetConf {
  cniVersion: string;
  name: string;
  /** Where the agent writes the node settings; default DEFAULT_SETTINGS_PATH. */
  settingsFile?: string;
  /** Root of the address records; the network's records live in `<dataDir>/<name>`. */
  dataDir: string;
  prevResult?: Result;
  /** GC only: the attachments the runtime still knows. */
  validAttachments?: Attachment[];
  dns?: Dns;
}

// SPEC.md "Attachment Parameters": container IDs and network names.
const CNI_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** The environment each command needs (SPEC.md section 2). */
const REQUIRED: Record<Command, readonly string[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME"],
  GC: ["CNI_PATH"],
  STATUS: [],
  VERSION: [],
};

function invalidEnv(msg: string, details = ""): CniError {
  return new CniError(CniCode.InvalidEnvironment, msg, details);
}

/**
 * Why this plugin cannot use `ifname`, or null. Beyond the kernel's rules it
 * refuses the characters `ip -batch` treats specially; the spec lets a plugin
 * refuse a name it cannot use.
 */
export function ifnameProblem(ifname: string): string | null {
  return (
    interfaceNameProblem(ifname) ?? (/[#"'\\]/.test(ifname) ? "contains #, a quote or a backslash" : null)
  );
}

export function parseEnvironment(env: Readonly<Record<string, string | undefined>>): Invocation {
  const get = (key: string): string | undefined => (env[key] === "" ? undefined : env[key]);
  const command = get("CNI_COMMAND");
  if (command === undefined) throw invalidEnv("required env variables [CNI_COMMAND] missing");
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw invalidEnv(`CNI_COMMAND ${JSON.stringify(command)} is not one of ${COMMANDS.join(", ")}`);
  }
  const cmd = command as Command;
  const missing = REQUIRED[cmd].filter((key) => get(key) === undefined);
  if (missing.length > 0) throw invalidEnv(`required env variables [${missing.join(",")}] missing`);

  const invocation: Invocation = { command: cmd, args: {} };
  const containerID = get("CNI_CONTAINERID");
  if (containerID !== undefined) {
    if (!CNI_NAME.test(containerID)) {
      throw invalidEnv(
        "CNI_CONTAINERID has invalid characters",
        `${JSON.stringify(containerID)}: start with a letter or digit, then letters, digits, "_", "." or "-"`,
      );
    }
    invocation.containerID = containerID;
  }
  const ifname = get("CNI_IFNAME");
  if (ifname !== undefined) {
    const problem = ifnameProblem(ifname);
    if (problem)
      throw invalidEnv("CNI_IFNAME is not a usable interface name", `${JSON.stringify(ifname)} ${problem}`);
    invocation.ifname = ifname;
  }
  const netns = get("CNI_NETNS");
  if (netns !== undefined) {
    if (!isAbsolute(netns)) throw invalidEnv("CNI_NETNS must be an absolute path", JSON.stringify(netns));
    invocation.netns = netns;
  }
  const args = get("CNI_ARGS");
  if (args !== undefined) invocation.args = parseArgs(args);
  const path = get("CNI_PATH");
  if (path !== undefined) invocation.path = path;
  return invocation;
}

/** CNI_ARGS: "K1=V1;K2=V2". */
export function parseArgs(text: string): Record<string, string> {
  const args: Record<string, string> = {};
  for (const pair of text.split(";")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if (eq <= 0)
      throw invalidEnv("CNI_ARGS is not a list of KEY=VALUE pairs separated by ';'", JSON.stringify(pair));
    args[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return args;
}

/**
 * Keys a runtime may put in a plugin's configuration that this plugin does not
 * act on: protocol keys (SPEC.md section 1 and 3) and the list-level ones that
 * some runtimes copy down.
 */
const IGNORED_KEYS = new Set([
  "runtimeConfig",
  "args",
  "capabilities",
  "cniVersions",
  "disableCheck",
  "disableGC",
  "loadOnlyInlinedPlugins",
]);
const VALID_ATTACHMENTS = "cni.dev/valid-attachments";
// libcni also sends the spec's first, mistaken name for the same list (cni#1101).
const VALID_ATTACHMENTS_OLD = "cni.dev/attachments";

function invalidConfig(msg: string, details = ""): CniError {
  return new CniError(CniCode.InvalidConfig, msg, details);
}

function optionalPath(conf: Record<string, unknown>, key: string): string | undefined {
  const value = conf[key];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !isAbsolute(value)) {
    throw invalidConfig(`${key} must be an absolute path`, JSON.stringify(value));
  }
  return value;
}

function parseAttachments(value: unknown): Attachment[] {
  if (!Array.isArray(value)) throw invalidConfig(`${VALID_ATTACHMENTS} must be a list`);
  return value.map((item) => {
    const a = item as Record<string, unknown> | null;
    if (typeof a?.containerID !== "string" || typeof a.ifname !== "string") {
      throw invalidConfig(
        `${VALID_ATTACHMENTS} entries need string containerID and ifname`,
        JSON.stringify(item),
      );
    }
    return { containerID: a.containerID, ifname: a.ifname };
  });
}

export function parseNetConf(stdin: string, command: Command): NetConf {
  let value: unknown;
  try {
    value = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(
      CniCode.DecodeFailure,
      "network configuration on stdin is not JSON",
      (err as Error).message,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CniError(CniCode.DecodeFailure, "network configuration on stdin is not a JSON object");
  }
  const conf = value as Record<string, unknown>;

  if (typeof conf.name !== "string" || !CNI_NAME.test(conf.name)) {
    throw invalidConfig("network name missing or invalid", JSON.stringify(conf.name));
  }
  const cniVersion = conf.cniVersion;
  if (typeof cniVersion !== "string" || !(SUPPORTED_VERSIONS as readonly string[]).includes(cniVersion)) {
    throw new CniError(
      CniCode.IncompatibleVersion,
      "incompatible CNI version",
      `cniVersion ${JSON.stringify(cniVersion)}; this plugin supports ${SUPPORTED_VERSIONS.join(", ")}`,
    );
  }
  if ((command === "GC" || command === "STATUS") && compareVersions(cniVersion, "1.1.0") < 0) {
    throw new CniError(
      CniCode.IncompatibleVersion,
      `config version does not allow ${command}`,
      `cniVersion ${cniVersion}; ${command} needs 1.1.0`,
    );
  }
  if (conf.type !== PLUGIN_TYPE) {
    throw invalidConfig(`type must be "${PLUGIN_TYPE}"`, JSON.stringify(conf.type));
  }
  if (conf.ipam !== undefined) {
    throw new CniError(
      CniCode.UnsupportedField,
      "unsupported field ipam",
      `ipam=${JSON.stringify(conf.ipam)}: skein allocates addresses from the node's block itself; remove the ipam section`,
    );
  }
  if (conf.ipMasq !== undefined && conf.ipMasq !== false) {
    throw new CniError(
      CniCode.UnsupportedField,
      "unsupported field ipMasq",
      `ipMasq=${JSON.stringify(conf.ipMasq)}: the skein network agent masquerades traffic leaving the overlay; remove ipMasq`,
    );
  }
  const known = new Set([
    "cniVersion",
    "type",
    "name",
    "settingsFile",
    "dataDir",
    "prevResult",
    "dns",
    "ipMasq",
    VALID_ATTACHMENTS,
    VALID_ATTACHMENTS_OLD,
  ]);
  for (const [key, val] of Object.entries(conf)) {
    if (!known.has(key) && !IGNORED_KEYS.has(key) && !key.startsWith("cni.dev/")) {
      throw new CniError(
        CniCode.UnsupportedField,
        `unsupported field ${key}`,
        `${key}=${JSON.stringify(val)}`,
      );
    }
  }

  const netConf: NetConf = {
    cniVersion,
    name: conf.name,
    dataDir: optionalPath(conf, "dataDir") ?? DEFAULT_DATA_DIR,
  };
  const settingsFile = optionalPath(conf, "settingsFile");
  if (settingsFile !== undefined) netConf.settingsFile = settingsFile;
  if (conf.prevResult !== undefined && command !== "GC" && command !== "STATUS") {
    netConf.prevResult = parsePrevResult(conf.prevResult);
  }
  if (conf.dns !== undefined) {
    if (typeof conf.dns !== "object" || conf.dns === null || Array.isArray(conf.dns))
      throw invalidConfig("dns must be an object");
    netConf.dns = conf.dns as Dns;
  }
  if (command === "GC") {
    // libcni omits the list when its caller gave none, meaning "none is valid"
    // (it has already deleted every attachment it had cached).
    const attachments = conf[VALID_ATTACHMENTS] ?? conf[VALID_ATTACHMENTS_OLD] ?? [];
    netConf.validAttachments = parseAttachments(attachments);
  }
  return netConf;
}
