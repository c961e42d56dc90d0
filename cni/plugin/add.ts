/**
 * ADD: a veth pair whose host end joins the node's bridge and whose other end
 * is born inside the pod's namespace as CNI_IFNAME; an address from the node's
 * block carrying the whole network's prefix (one L2 segment for all pods), a
 * default route via the node's gateway, the overlay's MTU. All over rtnetlink
 * from this process (cni/netlink/rtnl.ts): no program is started.
 * A failure undoes what this call made, as the spec asks.
 */
import * as ipv4 from "../../kit/ipv4.ts";
import { addressAdd, defaultRouteReplace, linkDelete, linkUp, vethCreate } from "../netlink/rtnl.ts";
import { closeFd, EEXIST, openNetns, RtnlSocket, SystemError } from "../netlink/rtnl-socket.ts";
import { CniCode, CniError } from "./errors.ts";
import { AddressStore } from "./ipam.ts";
import { hostInterfaceName, hostMac, podMac } from "./names.ts";
import { nodeSettings } from "./node.ts";
import type { Attachment, Invocation, NetConf } from "./request.ts";
import { appendResult, type Result } from "./result.ts";
import { checkSandbox, notANetns } from "./sandbox.ts";

export async function add(invocation: Invocation, conf: NetConf): Promise<Result> {
  const netns = invocation.netns!;
  const attachment: Attachment = { containerID: invocation.containerID!, ifname: invocation.ifname! };
  const settings = await nodeSettings(conf);
  await checkSandbox(netns);
  let netnsFd: number;
  try {
    netnsFd = openNetns(netns);
  } catch (err) {
    throw notANetns(netns, (err as Error).message);
  }
  const node = RtnlSocket.open();
  let pod: RtnlSocket | undefined;
  try {
    // Checked before anything is allocated, so a node still coming up changes nothing.
    const bridgeIndex = node.linkIndex(settings.bridge);
    if (bridgeIndex === undefined) {
      throw new CniError(
        CniCode.TryAgainLater,
        "the node network is not ready yet",
        `bridge ${settings.bridge} does not exist; the skein network agent creates it`,
      );
    }
    pod = RtnlSocket.open(netnsFd);
    if (pod.linkIndex(attachment.ifname) !== undefined) throw interfaceExists(attachment.ifname, netns);

    const network = ipv4.parseCidr(settings.networkCIDR);
    const block = ipv4.parseCidr(settings.blockCIDR);
    const gateway = ipv4.parseAddress(settings.gateway);
    const store = new AddressStore(conf.dataDir, conf.name);
    const { address, fresh } = await store.allocate(attachment, block, [gateway]);
    const addressValue = ipv4.parseAddress(address);
    const host = await hostInterfaceName(attachment);

    let hostCreated = false;
    try {
      createVeth(node, host, {
        name: host,
        mtu: settings.mtu,
        mac: hostMac(addressValue),
        masterIndex: bridgeIndex,
        peer: { name: attachment.ifname, mtu: settings.mtu, mac: podMac(addressValue), netnsFd },
      });
      hostCreated = true;
      const index = pod.linkIndex(attachment.ifname);
      if (index === undefined)
        throw new Error(`${attachment.ifname} vanished from ${netns} right after ADD made it`);
      pod.request(
        [
          addressAdd(index, address, network.prefix, pod.next()),
          linkUp(index, pod.next()),
          defaultRouteReplace(settings.gateway, index, pod.next()),
        ],
        [
          `add ${address}/${network.prefix} to ${attachment.ifname}`,
          `set ${attachment.ifname} up`,
          `default route via ${settings.gateway}`,
        ],
      );
    } catch (err) {
      if (hostCreated) {
        try {
          node.request([linkDelete(host, node.next())], [`delete ${host}`]);
        } catch {
          // best effort: GC removes host ends no attachment owns
        }
      }
      if (fresh) await store.release(attachment).catch(() => undefined);
      throw err;
    }

    const cidr = `${address}/${network.prefix}`;
    const own: Result = {
      interfaces: [
        { name: host, mac: hostMac(addressValue), mtu: settings.mtu },
        { name: attachment.ifname, mac: podMac(addressValue), mtu: settings.mtu, sandbox: netns },
      ],
      ips: [{ address: cidr, gateway: settings.gateway, interface: 1 }],
      routes: [{ dst: "0.0.0.0/0", gw: settings.gateway }],
    };
    if (conf.dns) own.dns = conf.dns;
    return appendResult(conf.prevResult, own);
  } finally {
    pod?.close();
    node.close();
    closeFd(netnsFd);
  }
}

function interfaceExists(ifname: string, netns: string): CniError {
  return new CniError(
    CniCode.InterfaceExists,
    "interface already exists in the container",
    `${ifname} in ${netns}`,
  );
}

/**
 * The pod side was checked free just before; so "exists" means the host side
 * is taken, which can only be a leftover of this very attachment (its name
 * derives from it, and the runtime never runs two operations on one
 * attachment at once), from an ADD that died half-way: it is removed and the
 * pair made again.
 */
function createVeth(node: RtnlSocket, host: string, spec: Parameters<typeof vethCreate>[0]): void {
  const what = [`create veth ${host} with peer ${spec.peer.name}`];
  try {
    node.request([vethCreate(spec, node.next())], what);
  } catch (err) {
    if (!(err instanceof SystemError && err.errno === EEXIST)) throw err;
    node.request([linkDelete(host, node.next())], [`delete the leftover ${host}`]);
    node.request([vethCreate(spec, node.next())], what);
  }
}
