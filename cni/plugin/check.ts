/**
 * CHECK: the attachment is as ADD left it, judged against the prevResult the
 * runtime hands back: the host end on the bridge and up, the pod interface up
 * with the overlay MTU and its address, the default route via the gateway when
 * that route is still listed (later plugins may change routes), and the
 * address record still owned by this attachment.
 */
import { ExecError, inNetns, runJson } from "../../kit/exec.ts";
import { addrShow, isNoSuchDevice, linkShow, routeShow } from "../netlink/ip.ts";
import { type Link, parseLinkAddresses, parseLinks, parseRoutes } from "../netlink/parse.ts";
import { CniCode, CniError } from "./errors.ts";
import { AddressStore } from "./ipam.ts";
import { hostInterfaceName } from "./names.ts";
import { nodeSettings } from "./node.ts";
import type { Attachment, Invocation, NetConf } from "./request.ts";
import { checkSandbox } from "./sandbox.ts";

function failed(what: string): CniError {
  return new CniError(CniCode.CheckFailed, "attachment is not as ADD left it", what);
}

async function showOrUndefined<T>(
  argv: Parameters<typeof runJson>[0],
  parse: (v: unknown) => T[],
): Promise<T | undefined> {
  try {
    return parse(await runJson(argv, { timeoutMs: 10_000 }))[0];
  } catch (err) {
    if (err instanceof ExecError && isNoSuchDevice(err.stderr)) return undefined;
    throw err;
  }
}

function isUp(link: Link): boolean {
  return link.flags.includes("UP");
}

export async function check(invocation: Invocation, conf: NetConf): Promise<void> {
  const netns = invocation.netns!;
  const attachment: Attachment = { containerID: invocation.containerID!, ifname: invocation.ifname! };
  if (!conf.prevResult)
    throw new CniError(
      CniCode.InvalidConfig,
      "CHECK needs prevResult",
      "the runtime must pass the result of ADD",
    );
  const settings = await nodeSettings(conf);
  await checkSandbox(netns);

  const prev = conf.prevResult;
  const index = prev.interfaces.findIndex((i) => i.name === attachment.ifname && i.sandbox === netns);
  if (index < 0) throw failed(`prevResult lists no interface ${attachment.ifname} in ${netns}`);
  const ips = prev.ips.filter((ip) => ip.interface === index);
  if (ips.length === 0) throw failed(`prevResult lists no address on ${attachment.ifname}`);

  const hostName = await hostInterfaceName(attachment);
  const host = await showOrUndefined(linkShow(hostName), parseLinks);
  if (!host) throw failed(`host interface ${hostName} is missing`);
  if (host.master !== settings.bridge)
    throw failed(`host interface ${hostName} is not on bridge ${settings.bridge}`);
  if (!isUp(host)) throw failed(`host interface ${hostName} is down`);

  const pod = await showOrUndefined(inNetns(netns, addrShow(attachment.ifname)), parseLinkAddresses);
  if (!pod) throw failed(`interface ${attachment.ifname} is missing in ${netns}`);
  if (!isUp(pod)) throw failed(`interface ${attachment.ifname} is down`);
  if (pod.mtu !== settings.mtu)
    throw failed(`interface ${attachment.ifname} has MTU ${pod.mtu}, the overlay's is ${settings.mtu}`);
  const expectedMac = prev.interfaces[index]?.mac;
  if (expectedMac && pod.address !== expectedMac)
    throw failed(`interface ${attachment.ifname} has MAC ${pod.address}, not ${expectedMac}`);
  for (const ip of ips) {
    if (!pod.addresses.some((a) => `${a.local}/${a.prefixlen}` === ip.address)) {
      throw failed(`address ${ip.address} is missing on ${attachment.ifname}`);
    }
  }

  const ours = prev.routes.filter((r) => r.dst === "0.0.0.0/0" && r.gw === settings.gateway);
  if (ours.length > 0) {
    const routes = parseRoutes(
      await runJson(inNetns(netns, routeShow(attachment.ifname)), { timeoutMs: 10_000 }),
    );
    if (!routes.some((r) => r.dst === "default" && r.gateway === settings.gateway)) {
      throw failed(`default route via ${settings.gateway} is missing in ${netns}`);
    }
  }

  const recorded = new AddressStore(conf.dataDir, conf.name).find(attachment);
  const expected = ips[0]!.address.split("/")[0];
  if (recorded !== expected) {
    throw failed(
      `address record for ${attachment.containerID}/${attachment.ifname} is ${recorded ?? "missing"}, expected ${expected}`,
    );
  }
}
