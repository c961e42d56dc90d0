/**
 * The CSI Identity service: who the plugin is, what it can do, and whether it
 * is ready. Both the controller and the node processes serve it, with the same
 * answers, as the spec expects of one plugin.
 */

import { describeError } from "../kit/errors.ts";
import pkg from "../package.json" with { type: "json" };
import { CsiError } from "./grpc/status.ts";
import type { IdentityService, PluginCapability, Reply } from "./proto/types.ts";

/** The CSI driver name: the `CSIDriver` object, StorageClasses and PVs use it. */
export const PLUGIN_NAME = "zfs.csi.skein.io";

export interface IdentityOptions {
  /**
   * Whether the plugin can serve now (the API is reachable, the pool is
   * imported, …). Throwing says it is broken rather than still starting.
   */
  ready: () => boolean | Promise<boolean>;
}

const CAPABILITIES: Reply<PluginCapability>[] = [
  { service: { type: "CONTROLLER_SERVICE" } },
  // Volumes report an accessible topology; Skein's covers every Skein node (volumes follow pods).
  { service: { type: "VOLUME_ACCESSIBILITY_CONSTRAINTS" } },
  // A quota is raised while the dataset stays mounted.
  { volume_expansion: { type: "ONLINE" } },
];

export function identityService(options: IdentityOptions): IdentityService {
  return {
    async GetPluginInfo() {
      return { name: PLUGIN_NAME, vendor_version: pkg.version };
    },

    async GetPluginCapabilities() {
      return { capabilities: CAPABILITIES };
    },

    async Probe() {
      let ready: boolean;
      try {
        ready = await options.ready();
      } catch (cause) {
        throw new CsiError("FAILED_PRECONDITION", `the plugin is not healthy: ${describeError(cause)}`, {
          cause,
        });
      }
      return { ready: { value: ready } };
    },
  };
}
