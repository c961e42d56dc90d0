/**
 * The node's side of the configuration: the settings the agent wrote, checked
 * against the network the runtime asked for.
 */
import { DEFAULT_SETTINGS_PATH, type NodeSettings, readSettings, SettingsMissingError } from "../settings.ts";
import { CniCode, CniError } from "./errors.ts";
import type { NetConf } from "./request.ts";

/**
 * Missing settings mean the agent has not finished bringing the node up: a
 * transient state (11, try again later). Settings that cannot be used, or that
 * serve another network, are a configuration error (7).
 */
export async function nodeSettings(conf: NetConf): Promise<NodeSettings> {
  const path = conf.settingsFile ?? DEFAULT_SETTINGS_PATH;
  let settings: NodeSettings;
  try {
    settings = await readSettings(path);
  } catch (err) {
    if (err instanceof SettingsMissingError) {
      throw new CniError(CniCode.TryAgainLater, "the node network is not ready yet", err.message, {
        cause: err,
      });
    }
    throw new CniError(CniCode.InvalidConfig, "the node settings are unusable", (err as Error).message, {
      cause: err,
    });
  }
  if (settings.network !== conf.name) {
    throw new CniError(
      CniCode.InvalidConfig,
      `unknown network ${conf.name}`,
      `this node serves network ${JSON.stringify(settings.network)} (${path}); fix the name in the CNI configuration`,
    );
  }
  return settings;
}
