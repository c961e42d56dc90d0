/**
 * The node settings file: the contract between the node network agent (which
 * writes it once the bridge is up) and the CNI plugin (which reads it on every
 * call and makes no API calls). It lives on tmpfs by default, so after a reboot
 * the plugin reports "not ready" until the agent has rebuilt the bridge and
 * written the file again.
 *
 * Format (JSON), version 1:
 *   { "version": 1, "network": "skein", "networkCIDR": "10.32.0.0/12",
 *     "blockCIDR": "10.32.1.0/24", "gateway": "10.32.1.1", "mtu": 1450,
 *     "bridge": "skein0" }
 * Pods get addresses from `blockCIDR` with the prefix length of `networkCIDR`,
 * so every pod on every node sits on one L2 segment; `gateway` is the address
 * the agent puts on `bridge`, inside the block.
 */
import { readFileSync } from "node:fs";
import { writeFileAtomic } from "../kit/atomic-file.ts";
import { SkeinError } from "../kit/errors.ts";
import * as ipv4 from "../kit/ipv4.ts";
import { interfaceNameProblem } from "./netlink/ifname.ts";

export const SETTINGS_VERSION = 1;
export const DEFAULT_SETTINGS_PATH = "/run/skein/network.json";

export interface NodeSettings {
  version: typeof SETTINGS_VERSION;
  /** The CNI network name (the conflist's `name`) these settings serve. */
  network: string;
  /** The whole overlay, e.g. 10.32.0.0/12; pods carry its prefix length. */
  networkCIDR: string;
  /** This node's share of the overlay, from its NodeSubnet. */
  blockCIDR: string;
  /** The bridge's address, inside the block: the pods' default gateway. */
  gateway: string;
  mtu: number;
  bridge: string;
}

/** The settings file is absent: the agent has not finished setting up the node. */
export class SettingsMissingError extends SkeinError {
  readonly path: string;
  constructor(path: string, cause?: unknown) {
    super(
      "SettingsMissing",
      `node settings file ${path} does not exist yet: the skein network agent writes it once the node's bridge is ready; check that the agent runs on this node`,
      { cause },
    );
    this.path = path;
  }
}

export class SettingsInvalidError extends SkeinError {
  readonly path: string;
  constructor(path: string, problem: string, cause?: unknown) {
    super("SettingsInvalid", `node settings file ${path} is invalid: ${problem}`, { cause });
    this.path = path;
  }
}

const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const MIN_MTU = 68; // the smallest MTU IPv4 allows (RFC 791)
const MAX_MTU = 65535;
const FIELDS = ["version", "network", "networkCIDR", "blockCIDR", "gateway", "mtu", "bridge"];

/** Checks parsed JSON against the format; returns the problem, or the settings. */
export function validateSettings(value: unknown): { settings: NodeSettings } | { problem: string } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { problem: "it is not a JSON object" };
  }
  const v = value as Record<string, unknown>;
  if (v.version !== SETTINGS_VERSION) {
    return {
      problem: `version is ${JSON.stringify(v.version)}, this plugin reads version ${SETTINGS_VERSION}; the agent and the plugin must come from the same release`,
    };
  }
  const unknown = Object.keys(v).filter((key) => !FIELDS.includes(key));
  if (unknown.length > 0) return { problem: `unknown fields: ${unknown.join(", ")}` };
  for (const key of ["network", "networkCIDR", "blockCIDR", "gateway", "bridge"]) {
    if (typeof v[key] !== "string") return { problem: `${key} must be a string` };
  }
  const s = v as unknown as NodeSettings;
  if (!NETWORK_NAME.test(s.network))
    return { problem: `network ${JSON.stringify(s.network)} is not a valid name` };
  const bridgeProblem = interfaceNameProblem(s.bridge);
  if (bridgeProblem) return { problem: `bridge name ${JSON.stringify(s.bridge)} ${bridgeProblem}` };
  if (!Number.isInteger(s.mtu) || s.mtu < MIN_MTU || s.mtu > MAX_MTU) {
    return { problem: `mtu ${JSON.stringify(s.mtu)} must be an integer from ${MIN_MTU} to ${MAX_MTU}` };
  }
  let network: ipv4.Cidr;
  let block: ipv4.Cidr;
  let gateway: number;
  try {
    network = ipv4.parseCidr(s.networkCIDR);
    block = ipv4.parseCidr(s.blockCIDR);
    gateway = ipv4.parseAddress(s.gateway);
  } catch (err) {
    return { problem: (err as Error).message };
  }
  if (!ipv4.containsCidr(network, block)) {
    return { problem: `blockCIDR ${s.blockCIDR} is not inside networkCIDR ${s.networkCIDR}` };
  }
  if (block.prefix > 30) return { problem: `blockCIDR ${s.blockCIDR} is too small: it needs at least a /30` };
  if (!ipv4.contains(block, gateway) || gateway === block.network || gateway === ipv4.broadcast(block)) {
    return { problem: `gateway ${s.gateway} must be a host address inside blockCIDR ${s.blockCIDR}` };
  }
  return {
    settings: {
      version: SETTINGS_VERSION,
      network: s.network,
      networkCIDR: s.networkCIDR,
      blockCIDR: s.blockCIDR,
      gateway: s.gateway,
      mtu: s.mtu,
      bridge: s.bridge,
    },
  };
}

export function parseSettings(text: string, path: string): NodeSettings {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new SettingsInvalidError(path, "it is not JSON", cause);
  }
  const checked = validateSettings(value);
  if ("problem" in checked) throw new SettingsInvalidError(path, checked.problem);
  return checked.settings;
}

/**
 * Synchronous read inside an async API: the plugin reads this file once per
 * run, and `node:fs/promises` costs it milliseconds of start-up under Bun.
 */
export async function readSettings(path: string = DEFAULT_SETTINGS_PATH): Promise<NodeSettings> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "ENOENT") throw new SettingsMissingError(path, cause);
    throw new SettingsInvalidError(path, `it cannot be read: ${(cause as Error).message}`, cause);
  }
  return parseSettings(text, path);
}

/** For the agent: validates, then replaces the file atomically (readers never see a partial file). */
export async function writeSettings(
  settings: NodeSettings,
  path: string = DEFAULT_SETTINGS_PATH,
): Promise<void> {
  const checked = validateSettings(settings);
  if ("problem" in checked) throw new SettingsInvalidError(path, checked.problem);
  await writeFileAtomic(path, `${JSON.stringify(checked.settings, null, 2)}\n`);
}
