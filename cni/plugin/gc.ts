/**
 * GC: frees the address of every attachment the runtime no longer lists, and
 * removes host veth ends on the bridge that belong to none of the listed
 * attachments (normally the kernel removed them with their namespace). Keeps
 * going past failures and reports them all at the end, as the spec asks.
 */

import { describeError } from "../../kit/errors.ts";
import { ExecError, run, runJson } from "../../kit/exec.ts";
import { isNoSuchDevice, linkDel, linkShowMaster } from "../netlink/ip.ts";
import { parseLinks } from "../netlink/parse.ts";
import { DEFAULT_SETTINGS_PATH, readSettings } from "../settings.ts";
import { CniCode, CniError } from "./errors.ts";
import { AddressStore } from "./ipam.ts";
import { hostInterfaceName, isHostInterfaceName } from "./names.ts";
import type { NetConf } from "./request.ts";

export async function gc(conf: NetConf): Promise<void> {
  const valid = conf.validAttachments ?? [];
  const errors: string[] = [];

  try {
    await new AddressStore(conf.dataDir, conf.name).collect(valid);
  } catch (err) {
    errors.push(`releasing addresses: ${describeError(err)}`);
  }

  // Without settings there is no bridge to look at: nothing was ever attached.
  const settings = await readSettings(conf.settingsFile ?? DEFAULT_SETTINGS_PATH).catch(() => undefined);
  if (settings && settings.network === conf.name) {
    const keep = new Set(await Promise.all(valid.map(hostInterfaceName)));
    try {
      const ports = parseLinks(await runJson(linkShowMaster(settings.bridge), { timeoutMs: 10_000 }));
      for (const port of ports) {
        if (!isHostInterfaceName(port.ifname) || keep.has(port.ifname)) continue;
        await run(linkDel(port.ifname), { timeoutMs: 10_000 }).catch((err) =>
          errors.push(`removing ${port.ifname}: ${describeError(err)}`),
        );
      }
    } catch (err) {
      // No bridge, no ports: the agent is rebuilding it and the kernel took the ports with it.
      if (!(err instanceof ExecError && isNoSuchDevice(err.stderr))) {
        errors.push(`listing ports of ${settings.bridge}: ${describeError(err)}`);
      }
    }
  }

  if (errors.length > 0)
    throw new CniError(CniCode.Internal, "garbage collection left some resources", errors.join("; "));
}
