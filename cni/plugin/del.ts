/**
 * DEL: best-effort and idempotent. Removing the host end of the veth removes
 * the pod end with it (and the kernel already removed both if the namespace is
 * gone), so DEL needs neither the namespace nor the node settings: the host
 * name derives from the attachment. The address is freed only after the link
 * is gone, so it is never handed out while an old interface still holds it.
 * Over rtnetlink from this process, like ADD.
 */
import { linkDelete } from "../netlink/rtnl.ts";
import { ENODEV, RtnlSocket, SystemError } from "../netlink/rtnl-socket.ts";
import { AddressStore } from "./ipam.ts";
import { hostInterfaceName } from "./names.ts";
import type { Attachment, Invocation, NetConf } from "./request.ts";

export async function del(invocation: Invocation, conf: NetConf): Promise<void> {
  const attachment: Attachment = { containerID: invocation.containerID!, ifname: invocation.ifname! };
  const host = await hostInterfaceName(attachment);
  const node = RtnlSocket.open();
  try {
    node.request([linkDelete(host, node.next())], [`delete ${host}`]);
  } catch (err) {
    if (!(err instanceof SystemError && err.errno === ENODEV)) throw err;
  } finally {
    node.close();
  }
  await new AddressStore(conf.dataDir, conf.name).release(attachment);
}
