/**
 * DEL: best-effort and idempotent. Removing the host end of the veth removes
 * the pod end with it (and the kernel already removed both if the namespace is
 * gone), so DEL needs neither the namespace nor the node settings: the host
 * name derives from the attachment. The address is freed only after the link
 * is gone, so it is never handed out while an old interface still holds it.
 */
import { ExecError, run } from "../../kit/exec.ts";
import { isNoSuchDevice, linkDel } from "../netlink/ip.ts";
import { AddressStore } from "./ipam.ts";
import { hostInterfaceName } from "./names.ts";
import type { Attachment, Invocation, NetConf } from "./request.ts";

export async function del(invocation: Invocation, conf: NetConf): Promise<void> {
  const attachment: Attachment = { containerID: invocation.containerID!, ifname: invocation.ifname! };
  try {
    await run(linkDel(hostInterfaceName(attachment)), { timeoutMs: 10_000 });
  } catch (err) {
    if (!(err instanceof ExecError && isNoSuchDevice(err.stderr))) throw err;
  }
  await new AddressStore(conf.dataDir, conf.name).release(attachment);
}
