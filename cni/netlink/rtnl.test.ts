import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../kit/errors.ts";
import {
  addressAdd,
  defaultRouteReplace,
  linkDelete,
  linkGet,
  linkUp,
  NLMSG_ERROR,
  parseReplies,
  RTM_DELLINK,
  RTM_GETLINK,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  vethCreate,
} from "./rtnl.ts";

interface Attr {
  type: number;
  nested: boolean;
  payload: Uint8Array;
}

/** Walks netlink attributes, checking each length and 4-byte alignment on the way. */
function attrs(bytes: Uint8Array): Attr[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Attr[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const length = view.getUint16(offset, true);
    const type = view.getUint16(offset + 2, true);
    expect(length).toBeGreaterThanOrEqual(4);
    expect(offset + length).toBeLessThanOrEqual(bytes.length);
    out.push({
      type: type & 0x3fff,
      nested: (type & 0x8000) !== 0,
      payload: bytes.subarray(offset + 4, offset + length),
    });
    offset += (length + 3) & ~3;
  }
  expect(offset).toBe(bytes.length);
  return out;
}

function header(bytes: Uint8Array) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    length: view.getUint32(0, true),
    type: view.getUint16(4, true),
    flags: view.getUint16(6, true),
    seq: view.getUint32(8, true),
  };
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const u32 = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0, true);
const find = (list: Attr[], type: number) => list.find((a) => a.type === type)!;

describe("rtnetlink requests", () => {
  it("a veth pair: host end enslaved and up, the peer named, sized and placed by namespace fd", () => {
    const { seq, bytes } = vethCreate(
      {
        name: "sk0123456789ab",
        mtu: 1450,
        mac: "0a:59:0a:20:01:03",
        masterIndex: 7,
        peer: { name: "eth0", mtu: 1450, mac: "0a:58:0a:20:01:03", netnsFd: 5 },
      },
      42,
    );
    expect(seq).toBe(42);
    // REQUEST | ACK | EXCL | CREATE: fails rather than touching an existing link.
    expect(header(bytes)).toEqual({ length: bytes.length, type: RTM_NEWLINK, flags: 0x605, seq: 42 });
    const info = new DataView(bytes.buffer, 16, 16);
    expect([info.getUint32(8, true), info.getUint32(12, true)]).toEqual([1, 1]); // IFF_UP set and changed
    const top = attrs(bytes.subarray(32));
    expect(text(find(top, 3).payload)).toBe("sk0123456789ab\0");
    expect(u32(find(top, 4).payload)).toBe(1450);
    expect([...find(top, 1).payload]).toEqual([0x0a, 0x59, 0x0a, 0x20, 0x01, 0x03]);
    expect(u32(find(top, 10).payload)).toBe(7);
    const linkinfo = find(top, 18);
    expect(linkinfo.nested).toBe(true);
    const info2 = attrs(linkinfo.payload);
    expect(text(find(info2, 1).payload)).toBe("veth\0");
    const peerAttr = find(attrs(find(info2, 2).payload), 1);
    const peer = attrs(peerAttr.payload.subarray(16)); // after the peer's ifinfomsg
    expect(text(find(peer, 3).payload)).toBe("eth0\0");
    expect(u32(find(peer, 4).payload)).toBe(1450);
    expect([...find(peer, 1).payload]).toEqual([0x0a, 0x58, 0x0a, 0x20, 0x01, 0x03]);
    expect(u32(find(peer, 28).payload)).toBe(5);
  });

  it("an address: prefix and index in the header, the address in network byte order", () => {
    const { bytes } = addressAdd(9, "10.32.1.3", 16, 3);
    expect(header(bytes)).toMatchObject({ type: RTM_NEWADDR, flags: 0x605, seq: 3 });
    const view = new DataView(bytes.buffer, 16, 8);
    expect([view.getUint8(0), view.getUint8(1), view.getUint32(4, true)]).toEqual([2, 16, 9]);
    const list = attrs(bytes.subarray(24));
    expect([...find(list, 2).payload]).toEqual([10, 32, 1, 3]);
    expect([...find(list, 1).payload]).toEqual([10, 32, 1, 3]);
  });

  it("the default route replaces any other, via the gateway on the interface", () => {
    const { bytes } = defaultRouteReplace("10.32.1.1", 9, 4);
    expect(header(bytes)).toMatchObject({ type: RTM_NEWROUTE, flags: 0x505, seq: 4 });
    const rt = bytes.subarray(16, 28);
    // AF_INET, dst_len 0, table main, proto boot, scope universe, unicast
    expect([rt[0], rt[1], rt[4], rt[5], rt[6], rt[7]]).toEqual([2, 0, 254, 3, 0, 1]);
    const list = attrs(bytes.subarray(28));
    expect([...find(list, 5).payload]).toEqual([10, 32, 1, 1]);
    expect(u32(find(list, 4).payload)).toBe(9);
  });

  it("delete and look up a link by name; set a link up by index", () => {
    const del = linkDelete("sk0123456789ab", 5).bytes;
    expect(header(del)).toMatchObject({ type: RTM_DELLINK, flags: 0x5 });
    expect(text(find(attrs(del.subarray(32)), 3).payload)).toBe("sk0123456789ab\0");
    const get = linkGet("eth0", 6).bytes;
    expect(header(get)).toMatchObject({ type: RTM_GETLINK, flags: 0x1 });
    const up = linkUp(12, 7).bytes;
    expect(header(up)).toMatchObject({ type: RTM_NEWLINK, flags: 0x5, length: 32 });
    expect(new DataView(up.buffer, 16, 16).getInt32(4, true)).toBe(12);
  });

  it("refuses what the kernel would refuse, before sending anything", () => {
    const veth = {
      name: "sk0123456789ab",
      mtu: 1450,
      mac: "0a:59:0a:20:01:03",
      masterIndex: 7,
      peer: { name: "eth0", mtu: 1450, mac: "0a:58:0a:20:01:03", netnsFd: 5 },
    };
    expect(() => vethCreate({ ...veth, name: "a/b" }, 1)).toThrow(InvalidInputError);
    expect(() => vethCreate({ ...veth, name: "sixteen-bytes-xx" }, 1)).toThrow(InvalidInputError);
    expect(() => vethCreate({ ...veth, mtu: 67 }, 1)).toThrow(/MTU 67/);
    expect(() => vethCreate({ ...veth, peer: { ...veth.peer, mac: "0A:58:0a:20:01:03" } }, 1)).toThrow(/MAC/);
    expect(() => addressAdd(1, "10.32.1.300", 16, 1)).toThrow(InvalidInputError);
    expect(() => addressAdd(1, "10.32.1.3", 33, 1)).toThrow(/prefix length 33/);
    expect(() => defaultRouteReplace("gateway", 1, 1)).toThrow(InvalidInputError);
  });
});

function reply(type: number, seq: number, body: number[]): number[] {
  const length = 16 + body.length;
  const out = new Uint8Array((length + 3) & ~3);
  const view = new DataView(out.buffer);
  view.setUint32(0, length, true);
  view.setUint16(4, type, true);
  view.setUint32(8, seq, true);
  out.set(body, 16);
  return [...out];
}

const int32 = (n: number) => [...new Uint8Array(new Int32Array([n]).buffer)];

describe("rtnetlink replies", () => {
  it("reads acknowledgements, errors and link replies from one buffer", () => {
    const buffer = Uint8Array.from([
      ...reply(NLMSG_ERROR, 1, [...int32(0), ...new Array(16).fill(0)]),
      ...reply(NLMSG_ERROR, 2, [...int32(-17), ...new Array(16).fill(0)]),
      ...reply(RTM_NEWLINK, 3, [0, 0, 1, 0, ...int32(12), ...new Array(8).fill(0)]),
      ...reply(0x3, 4, []),
    ]);
    expect(parseReplies(buffer)).toEqual([
      { seq: 1, kind: "ack", errno: 0 },
      { seq: 2, kind: "ack", errno: 17 },
      { seq: 3, kind: "link", index: 12 },
      { seq: 4, kind: "other", type: 3 },
    ]);
  });

  it("ignores a truncated tail and a header that lies about its length", () => {
    const ack = reply(NLMSG_ERROR, 1, [...int32(0), ...new Array(16).fill(0)]);
    expect(parseReplies(Uint8Array.from([...ack, ...ack.slice(0, 10)]))).toHaveLength(1);
    const liar = Uint8Array.from(ack);
    new DataView(liar.buffer).setUint32(0, 4096, true);
    expect(parseReplies(liar)).toEqual([]);
    expect(parseReplies(new Uint8Array(0))).toEqual([]);
  });
});
