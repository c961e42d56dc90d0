/**
 * ADD: a veth pair whose host end joins the node's bridge and whose other end
 * is born inside the pod's namespace as CNI_IFNAME; an address from the node's
 * block carrying the whole network's prefix (one L2 segment for all pods), a
 * default route via the node's gateway, the overlay's MTU. Two process starts:
 * `ip link add` on the host, one `ip -batch` inside the pod.
 * A failure undoes what this call made, as the spec asks.
 */
import { ExecError, inNetns, run } from "../../kit/exec.ts";
import * as ipv4 from "../../kit/ipv4.ts";
import {
  addrAdd,
  ipBatch,
  isFileExists,
  isNoSuchDevice,
  linkDel,
  linkSet,
  linkShow,
  routeReplace,
  type VethSpec,
  vethAdd,
} from "../netlink/ip.ts";
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

  const network = ipv4.parseCidr(settings.networkCIDR);
  const block = ipv4.parseCidr(settings.blockCIDR);
  const gateway = ipv4.parseAddress(settings.gateway);
  const store = new AddressStore(conf.dataDir, conf.name);
  const { address, fresh } = await store.allocate(attachment, block, [gateway]);
  const addressValue = ipv4.parseAddress(address);
  const host = hostInterfaceName(attachment);

  let hostCreated = false;
  try {
    await createVeth(netns, attachment.ifname, {
      name: host,
      mtu: settings.mtu,
      mac: hostMac(addressValue),
      master: settings.bridge,
      up: true,
      peer: { name: attachment.ifname, mtu: settings.mtu, mac: podMac(addressValue), netns },
    });
    hostCreated = true;
    const cidr = `${address}/${network.prefix}`;
    const batch = ipBatch([
      addrAdd(cidr, attachment.ifname),
      linkSet(attachment.ifname, { up: true }),
      routeReplace({ dst: "default", via: settings.gateway, dev: attachment.ifname }),
    ]);
    await run(inNetns(netns, batch.argv), { input: batch.input, timeoutMs: 10_000 });

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
  } catch (err) {
    if (hostCreated) await run(linkDel(host)).catch(() => undefined);
    if (fresh) await store.release(attachment).catch(() => undefined);
    throw err;
  }
}

/**
 * `ip link add` fails with "File exists" when either name is taken. The pod
 * side taken is the spec's error; the host side taken can only be a leftover
 * of this very attachment (its name derives from it, and the runtime never runs
 * two operations on one attachment at once), from an ADD that died half-way:
 * it is removed and the pair made again.
 */
async function createVeth(netns: string, ifname: string, spec: VethSpec): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await run(vethAdd(spec), { timeoutMs: 10_000 });
      return;
    } catch (err) {
      // iproute2 6.1: `Error: argument "skein0" is wrong: Device does not exist`
      if (err instanceof ExecError && spec.master && bridgeMissing(err.stderr, spec.master)) {
        throw new CniError(
          CniCode.TryAgainLater,
          "the node network is not ready yet",
          `bridge ${spec.master} does not exist; the skein network agent creates it`,
          { cause: err },
        );
      }
      if (err instanceof ExecError && err.stderr.includes('Invalid "netns" value')) {
        throw notANetns(netns, "the kernel refused it as a network namespace");
      }
      if (!(err instanceof ExecError && isFileExists(err.stderr))) throw err;
      if (await linkExists(inNetns(netns, linkShow(ifname)))) {
        throw new CniError(
          CniCode.InterfaceExists,
          "interface already exists in the container",
          `${ifname} in ${netns}`,
        );
      }
      if (attempt > 0 || !(await linkExists(linkShow(spec.name)))) throw err;
      await run(linkDel(spec.name));
    }
  }
}

function bridgeMissing(stderr: string, bridge: string): boolean {
  return stderr.includes(`"${bridge}"`) && /does not exist/.test(stderr);
}

async function linkExists(argv: Parameters<typeof run>[0]): Promise<boolean> {
  try {
    await run(argv, { timeoutMs: 10_000 });
    return true;
  } catch (err) {
    if (err instanceof ExecError && isNoSuchDevice(err.stderr)) return false;
    throw err;
  }
}
