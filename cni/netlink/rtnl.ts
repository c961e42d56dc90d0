/**
 * rtnetlink messages for the CNI plugin's hot path, as bytes: the few requests
 * ADD and DEL make (a veth pair with its peer in the pod's namespace, an
 * address, link up, the default route, delete a link, look up a link's index)
 * and the replies to them. Pure; rtnl-socket.ts sends them. The layouts are
 * the kernel's UAPI (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h,
 * linux/veth.h), native byte order (little-endian on the platforms Skein
 * builds for).
 *
 * Why not `ip`: each process start costs the plugin milliseconds, and ADD
 * needed two (`ip link add`, then `ip -batch` inside the pod); the reference
 * plugins also speak netlink in-process.
 */
import { InvalidInputError } from "../../kit/errors.ts";
import * as ipv4 from "../../kit/ipv4.ts";
import { checkedInterfaceName } from "./ifname.ts";

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_NEWROUTE = 24;

const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLA_F_NESTED = 0x8000;

const AF_UNSPEC = 0;
const AF_INET = 2;
const IFF_UP = 0x1;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RTN_UNICAST = 1;

const NLMSG_HDRLEN = 16;
const IFINFOMSG_LEN = 16;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** One request: its bytes and the sequence number its reply carries. */
export interface Request {
  seq: number;
  bytes: Uint8Array;
}

const align4 = (n: number) => (n + 3) & ~3;

/** A netlink attribute (type, payload), or a nested one (payload = concatenated attributes). */
function attr(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(align4(4 + payload.length));
  const view = new DataView(out.buffer);
  view.setUint16(0, 4 + payload.length, true);
  view.setUint16(2, type, true);
  out.set(payload, 4);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

const nested = (type: number, parts: readonly Uint8Array[]) => attr(type | NLA_F_NESTED, concat(parts));

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
}

/** An IPv4 address in network byte order, as the kernel stores it. */
function inet(address: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, address, false);
  return out;
}

const cstring = (s: string) => new TextEncoder().encode(`${s}\0`);
const ifname = (name: string) => attr(IFLA_IFNAME, cstring(checkedInterfaceName(name)));

function mtuAttr(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 68 || value > 65535)
    throw new InvalidInputError(`MTU ${value} is out of range`);
  return attr(IFLA_MTU, u32(value));
}

function macAttr(value: string): Uint8Array {
  if (!MAC.test(value))
    throw new InvalidInputError(`${JSON.stringify(value)} is not a lower-case MAC address`);
  return attr(
    IFLA_ADDRESS,
    Uint8Array.from(value.split(":"), (h) => Number.parseInt(h, 16)),
  );
}

function ifinfomsg(index: number, up: boolean): Uint8Array {
  const out = new Uint8Array(IFINFOMSG_LEN);
  const view = new DataView(out.buffer);
  view.setUint8(0, AF_UNSPEC);
  view.setInt32(4, index, true);
  view.setUint32(8, up ? IFF_UP : 0, true);
  view.setUint32(12, up ? IFF_UP : 0, true);
  return out;
}

function message(type: number, flags: number, seq: number, body: readonly Uint8Array[]): Request {
  const payload = concat(body);
  const bytes = new Uint8Array(NLMSG_HDRLEN + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, bytes.length, true);
  view.setUint16(4, type, true);
  view.setUint16(6, flags, true);
  view.setUint32(8, seq, true);
  view.setUint32(12, 0, true);
  bytes.set(payload, NLMSG_HDRLEN);
  return { seq, bytes };
}

export interface VethRequest {
  /** The host end: created in the socket's namespace, enslaved and up. */
  name: string;
  mtu: number;
  mac: string;
  masterIndex: number;
  peer: {
    name: string;
    mtu: number;
    mac: string;
    /** An open file descriptor of the namespace the peer is born in. */
    netnsFd: number;
  };
}

/** `ip link add NAME mtu M address A master B up type veth peer name P mtu M address A netns FD`. */
export function vethCreate(spec: VethRequest, seq: number): Request {
  const peer = concat([
    ifinfomsg(0, false),
    ifname(spec.peer.name),
    mtuAttr(spec.peer.mtu),
    macAttr(spec.peer.mac),
    attr(IFLA_NET_NS_FD, u32(spec.peer.netnsFd)),
  ]);
  return message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, [
    ifinfomsg(0, true),
    ifname(spec.name),
    mtuAttr(spec.mtu),
    macAttr(spec.mac),
    attr(IFLA_MASTER, u32(spec.masterIndex)),
    nested(IFLA_LINKINFO, [
      attr(IFLA_INFO_KIND, cstring("veth")),
      nested(IFLA_INFO_DATA, [attr(VETH_INFO_PEER, peer)]),
    ]),
  ]);
}

/** `ip link del dev NAME` (the kernel looks the link up by name). */
export function linkDelete(name: string, seq: number): Request {
  return message(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq, [ifinfomsg(0, false), ifname(name)]);
}

/** `ip link show dev NAME`: answered by an RTM_NEWLINK (see linkIndex) or an error. */
export function linkGet(name: string, seq: number): Request {
  return message(RTM_GETLINK, NLM_F_REQUEST, seq, [ifinfomsg(0, false), ifname(name)]);
}

/** `ip link set dev INDEX up`. */
export function linkUp(index: number, seq: number): Request {
  return message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, [ifinfomsg(index, true)]);
}

/** `ip addr add ADDRESS/PREFIX dev INDEX`. */
export function addressAdd(index: number, address: string, prefix: number, seq: number): Request {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32)
    throw new InvalidInputError(`prefix length ${prefix} is out of range`);
  const header = new Uint8Array(8);
  const view = new DataView(header.buffer);
  view.setUint8(0, AF_INET);
  view.setUint8(1, prefix);
  view.setUint8(3, RT_SCOPE_UNIVERSE);
  view.setUint32(4, index, true);
  return message(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, [
    header,
    attr(IFA_LOCAL, inet(ipv4.parseAddress(address))),
    attr(IFA_ADDRESS, inet(ipv4.parseAddress(address))),
  ]);
}

/** `ip route replace default via GATEWAY dev INDEX`. */
export function defaultRouteReplace(gateway: string, index: number, seq: number): Request {
  const header = new Uint8Array(12);
  const view = new DataView(header.buffer);
  view.setUint8(0, AF_INET);
  view.setUint8(4, RT_TABLE_MAIN);
  view.setUint8(5, RTPROT_BOOT);
  view.setUint8(6, RT_SCOPE_UNIVERSE);
  view.setUint8(7, RTN_UNICAST);
  return message(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq, [
    header,
    attr(RTA_GATEWAY, inet(ipv4.parseAddress(gateway))),
    attr(RTA_OIF, u32(index)),
  ]);
}

/** One message of a reply. */
export type Reply =
  | { seq: number; kind: "ack"; errno: number }
  | { seq: number; kind: "link"; index: number }
  | { seq: number; kind: "other"; type: number };

/** Splits what one recv(2) returned into messages; ignores a truncated tail. */
export function parseReplies(buffer: Uint8Array): Reply[] {
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const replies: Reply[] = [];
  for (let offset = 0; offset + NLMSG_HDRLEN <= buffer.length; ) {
    const length = view.getUint32(offset, true);
    if (length < NLMSG_HDRLEN || offset + length > buffer.length) break;
    const type = view.getUint16(offset + 4, true);
    const seq = view.getUint32(offset + 8, true);
    if (type === NLMSG_ERROR && length >= NLMSG_HDRLEN + 4) {
      // struct nlmsgerr: a negative errno, or 0 for an acknowledgement.
      const error = view.getInt32(offset + NLMSG_HDRLEN, true);
      replies.push({ seq, kind: "ack", errno: error === 0 ? 0 : -error });
    } else if (type === RTM_NEWLINK && length >= NLMSG_HDRLEN + IFINFOMSG_LEN) {
      replies.push({ seq, kind: "link", index: view.getInt32(offset + NLMSG_HDRLEN + 4, true) });
    } else {
      replies.push({ seq, kind: "other", type });
    }
    offset += align4(length);
  }
  return replies;
}
