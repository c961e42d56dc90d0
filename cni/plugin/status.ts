/**
 * STATUS: ready to service ADD? Not while the agent has not written the node
 * settings (50), not when the bridge has vanished, which also cuts off running
 * pods (51), and not when the node's block has no free address left (50).
 */
import { ExecError, run } from "../../kit/exec.ts";
import * as ipv4 from "../../kit/ipv4.ts";
import { isNoSuchDevice, linkShow } from "../netlink/ip.ts";
import { CniCode, CniError } from "./errors.ts";
import { AddressStore } from "./ipam.ts";
import { nodeSettings } from "./node.ts";
import type { NetConf } from "./request.ts";

export async function status(conf: NetConf): Promise<void> {
  const settings = await nodeSettings(conf).catch((err: Error) => {
    throw new CniError(
      CniCode.NotAvailable,
      "plugin not available",
      err instanceof CniError ? err.details : err.message,
      {
        cause: err,
      },
    );
  });
  try {
    await run(linkShow(settings.bridge), { timeoutMs: 10_000 });
  } catch (err) {
    if (err instanceof ExecError && isNoSuchDevice(err.stderr)) {
      throw new CniError(
        CniCode.LimitedConnectivity,
        "plugin not available; pods on this node may be cut off",
        `bridge ${settings.bridge} does not exist; the skein network agent recreates it`,
      );
    }
    throw err;
  }
  const block = ipv4.parseCidr(settings.blockCIDR);
  const gateway = ipv4.parseAddress(settings.gateway);
  const capacity = ipv4.size(block) - 2 - (ipv4.contains(block, gateway) ? 1 : 0);
  const used = new AddressStore(conf.dataDir, conf.name)
    .list()
    .filter((r) => ipv4.contains(block, ipv4.parseAddress(r.address))).length;
  if (used >= capacity) {
    throw new CniError(
      CniCode.NotAvailable,
      "plugin not available",
      `all ${capacity} addresses of ${settings.blockCIDR} are allocated`,
    );
  }
}
