import { encode, TRUNCATED_RESPONSE } from "dns-packet";
import { describe, expect, it } from "vitest";
import { type Decision, handleQuery, MAX_UDP_PAYLOAD, RCODE } from "./query.ts";
import { addressesOf, decodeResponse, queryPacket, TestZone } from "./testing.ts";

function zoneWithWeb(count = 3): TestZone {
  const zone = new TestZone();
  for (let i = 1; i <= count; i++) zone.addPod(`web-${i}`, [`10.244.${i}.2`], ["web"]);
  return zone;
}

function local(decision: Decision): Extract<Decision, { kind: "local" }> {
  if (decision.kind !== "local") throw new Error(`expected a local answer, got ${decision.kind}`);
  return decision;
}

/** Answers the query as the responder would: one rotation step per answer. */
function ask(zone: TestZone, message: Buffer, transport: "udp" | "tcp" = "udp") {
  const d = local(handleQuery(message, zone, transport));
  const rotation = d.rotation
    ? zone.records.nextRotation(d.rotation.name, d.rotation.family) % d.rotation.variants
    : 0;
  return decodeResponse(d.encode(rotation));
}

describe("handleQuery: names in the domain", () => {
  it("answers a shared name with every healthy pod, authoritative, short TTL", () => {
    const res = ask(zoneWithWeb(), queryPacket("web.skein.local", "A"));
    expect(res.rcode).toBe("NOERROR");
    expect(res.flag_aa).toBe(true);
    expect(res.flag_qr).toBe(true);
    expect(res.flag_rd).toBe(true);
    expect(res.id).toBe(4242);
    expect(res.answers?.map((a) => (a.type === "A" ? [a.data, a.ttl] : []))).toEqual([
      ["10.244.1.2", 2],
      ["10.244.2.2", 2],
      ["10.244.3.2", 2],
    ]);
  });

  it("rotates the order on each answer", () => {
    const zone = zoneWithWeb();
    const firsts = [0, 1, 2, 3].map(() => ask(zone, queryPacket("web.skein.local", "A")).answers?.[0]);
    expect(firsts.map((a) => (a?.type === "A" ? a.data : ""))).toEqual([
      "10.244.1.2",
      "10.244.2.2",
      "10.244.3.2",
      "10.244.1.2",
    ]);
  });

  it("keeps the case the client asked in (0x20 randomisation)", () => {
    const res = ask(zoneWithWeb(1), queryPacket("wEb.SkEiN.local", "A"));
    expect(res.questions?.[0]?.name).toBe("wEb.SkEiN.local");
    expect(res.answers?.[0]?.name).toBe("wEb.SkEiN.local");
  });

  it("answers <pod>.<namespace>", () => {
    const zone = zoneWithWeb();
    expect(
      addressesOf(local(handleQuery(queryPacket("web-2.default.skein.local", "A"), zone, "udp")).encode(0)),
    ).toEqual(["10.244.2.2"]);
  });

  it.each([
    ["unknown name", "nope.skein.local", "A", "NXDOMAIN", 0],
    ["too deep", "a.web-1.default.skein.local", "A", "NXDOMAIN", 0],
    ["other type of a known name", "web.skein.local", "MX", "NOERROR", 0],
    ["AAAA of an IPv4-only name", "web.skein.local", "AAAA", "NOERROR", 0],
    ["a numbered type", "web.skein.local", "UNKNOWN_65280", "NOERROR", 0],
    ["an empty non-terminal (namespace)", "default.skein.local", "A", "NOERROR", 0],
    ["the apex", "skein.local", "A", "NOERROR", 0],
    ["the apex SOA", "skein.local", "SOA", "NOERROR", 1],
    ["ANY of a name", "web.skein.local", "ANY", "NOERROR", 3],
  ])("%s: %s %s → %s with %d answers", (_, name, type, rcode, answers) => {
    const res = ask(zoneWithWeb(), queryPacket(name, type));
    expect(res.rcode).toBe(rcode);
    expect(res.flag_aa).toBe(true);
    expect(res.answers ?? []).toHaveLength(answers);
    if (answers === 0) {
      // RFC 2308: negative answers carry the SOA, whose minimum is the TTL.
      expect(res.authorities?.[0]).toMatchObject({ type: "SOA", name: "skein.local", ttl: 2 });
      expect(res.authorities?.[0]?.type === "SOA" && res.authorities[0].data.minimum).toBe(2);
    }
  });

  it("answers AAAA from IPv6 pod addresses", () => {
    const zone = new TestZone();
    zone.addPod("v6", ["10.244.9.9", "fd00::9"], ["dual"]);
    expect(
      addressesOf(local(handleQuery(queryPacket("dual.skein.local", "AAAA"), zone, "udp")).encode(0)),
    ).toEqual(["fd00::9"]);
  });

  it.each([["CH"], ["HS"]])("refuses class %s in the domain", (klass) => {
    expect(ask(zoneWithWeb(), queryPacket("web.skein.local", "A", { class: klass })).rcode).toBe("REFUSED");
  });

  it.each([["AXFR"], ["IXFR"]])("refuses zone transfers (%s)", (type) => {
    expect(ask(zoneWithWeb(), queryPacket("skein.local", type)).rcode).toBe("REFUSED");
  });

  it("follows a domain change", () => {
    const zone = zoneWithWeb();
    zone.domain = "cluster.test";
    expect(ask(zone, queryPacket("web.cluster.test", "A")).rcode).toBe("NOERROR");
    expect(handleQuery(queryPacket("web.skein.local", "A"), zone, "udp").kind).toBe("forward");
  });
});

describe("handleQuery: reverse lookups", () => {
  it("answers PTR for a pod address with <pod>.<namespace>.<domain>", () => {
    const res = ask(zoneWithWeb(), queryPacket("2.2.244.10.in-addr.arpa", "PTR"));
    expect(res.rcode).toBe("NOERROR");
    expect(res.answers?.[0]).toMatchObject({ type: "PTR", data: "web-2.default.skein.local", ttl: 2 });
  });

  it("says NXDOMAIN for an unused overlay address and forwards addresses outside it", () => {
    expect(ask(zoneWithWeb(), queryPacket("9.9.244.10.in-addr.arpa", "PTR")).rcode).toBe("NXDOMAIN");
    expect(handleQuery(queryPacket("1.0.0.127.in-addr.arpa", "PTR"), zoneWithWeb(), "udp").kind).toBe(
      "forward",
    );
    expect(handleQuery(queryPacket("244.10.in-addr.arpa", "PTR"), zoneWithWeb(), "udp").kind).toBe("forward");
  });

  it("answers NODATA for other types of a pod's reverse name", () => {
    const res = ask(zoneWithWeb(), queryPacket("2.2.244.10.in-addr.arpa", "A"));
    expect(res.rcode).toBe("NOERROR");
    expect(res.answers ?? []).toHaveLength(0);
  });
});

describe("handleQuery: forwarding", () => {
  it("forwards names outside the domain and can answer SERVFAIL for them", () => {
    const message = queryPacket("example.org", "A", { id: 7 });
    const d = handleQuery(message, zoneWithWeb(), "udp");
    if (d.kind !== "forward") throw new Error("expected forward");
    expect(d.question).toMatchObject({ name: "example.org", type: "A" });
    expect(d.limit).toBe(512);
    const fail = decodeResponse(d.fail(RCODE.SERVFAIL));
    expect(fail).toMatchObject({ id: 7, rcode: "SERVFAIL", flag_qr: true, flag_aa: false });
    expect(fail.questions?.[0]?.name).toBe("example.org");
  });

  it("tells the client's EDNS size to the forwarder, capped", () => {
    const d = handleQuery(queryPacket("example.org", "A", { edns: 4096 }), zoneWithWeb(), "udp");
    expect(d.kind === "forward" && d.limit).toBe(MAX_UDP_PAYLOAD);
  });
});

describe("handleQuery: protocol errors", () => {
  it.each([
    ["an empty datagram", Buffer.alloc(0), "short"],
    ["11 bytes", Buffer.alloc(11), "short"],
    [
      "a response",
      (() => {
        const m = queryPacket("web.skein.local", "A");
        m[2] = m[2]! | 0x80;
        return m;
      })(),
      "response",
    ],
  ])("stays silent for %s", (_, message, reason) => {
    expect(handleQuery(message, zoneWithWeb(), "udp")).toEqual({ kind: "drop", reason });
  });

  it("answers FORMERR with the ID for a header followed by garbage", () => {
    const message = Buffer.concat([
      Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]),
      Buffer.from([0x3f, 1, 2]),
    ]);
    const res = ask(zoneWithWeb(), message);
    expect(res).toMatchObject({ id: 0x1234, rcode: "FORMERR", flag_qr: true });
    expect(res.questions ?? []).toHaveLength(0);
  });

  it("answers FORMERR for no question and for two", () => {
    const none = encode({ type: "query", id: 1, questions: [] });
    const two = encode({
      type: "query",
      id: 2,
      questions: [
        { name: "web.skein.local", type: "A" },
        { name: "web.skein.local", type: "AAAA" },
      ],
    });
    expect(ask(zoneWithWeb(), none).rcode).toBe("FORMERR");
    expect(ask(zoneWithWeb(), two).rcode).toBe("FORMERR");
  });

  it("answers NOTIMP for opcodes other than QUERY, keeping the opcode", () => {
    const message = queryPacket("web.skein.local", "A");
    message[2] = (message[2]! & 0x87) | (5 << 3); // UPDATE
    const res = ask(zoneWithWeb(), message);
    expect(res.rcode).toBe("NOTIMP");
    expect(res.opcode).toBe("UPDATE");
  });

  it("answers BADVERS to EDNS versions above 0", () => {
    const res = ask(zoneWithWeb(), queryPacket("web.skein.local", "A", { edns: 1232, ednsVersion: 1 }));
    const opt = res.additionals?.find((a) => a.type === "OPT");
    expect(opt?.type === "OPT" && opt.extendedRcode).toBe(1);
    expect(res.answers ?? []).toHaveLength(0);
  });

  it("answers FORMERR to two OPT records", () => {
    const message = encode({
      type: "query",
      id: 3,
      questions: [{ name: "web.skein.local", type: "A" }],
      additionals: [
        {
          type: "OPT",
          name: ".",
          udpPayloadSize: 1232,
          extendedRcode: 0,
          ednsVersion: 0,
          flags: 0,
          flag_do: false,
          options: [],
        },
        {
          type: "OPT",
          name: ".",
          udpPayloadSize: 1232,
          extendedRcode: 0,
          ednsVersion: 0,
          flags: 0,
          flag_do: false,
          options: [],
        },
      ],
    });
    expect(ask(zoneWithWeb(), message).rcode).toBe("FORMERR");
  });
});

describe("handleQuery: EDNS and truncation", () => {
  const many = () => zoneWithWeb(100);

  it("fits plain UDP answers in 512 bytes, cut at a record with TC set", () => {
    const message = local(handleQuery(queryPacket("web.skein.local", "A"), many(), "udp")).encode(0);
    expect(message.length).toBeLessThanOrEqual(512);
    const res = decodeResponse(message);
    expect(res.flag_tc).toBe(true);
    expect(res.answers!.length).toBeGreaterThan(0);
    expect(res.answers!.length).toBeLessThan(100);
  });

  it("uses the client's EDNS size, capped at 1232, and echoes OPT with the DO bit", () => {
    const big = local(
      handleQuery(queryPacket("web.skein.local", "A", { edns: 65000, dnssecOk: true }), many(), "udp"),
    ).encode(0);
    expect(big.length).toBeLessThanOrEqual(MAX_UDP_PAYLOAD);
    expect(big.length).toBeGreaterThan(512);
    const res = decodeResponse(big);
    expect(res.flag_tc).toBe(true);
    const opt = res.additionals?.find((a) => a.type === "OPT");
    expect(opt).toMatchObject({ udpPayloadSize: MAX_UDP_PAYLOAD, flag_do: true });
  });

  it("never goes below 512 for small EDNS sizes", () => {
    const message = local(
      handleQuery(queryPacket("web.skein.local", "A", { edns: 100 }), many(), "udp"),
    ).encode(0);
    expect(message.length).toBeGreaterThan(400);
    expect(message.length).toBeLessThanOrEqual(512);
  });

  it("sends every record over TCP", () => {
    const message = local(handleQuery(queryPacket("web.skein.local", "A"), many(), "tcp")).encode(0);
    const res = decodeResponse(message);
    expect(res.flags! & TRUNCATED_RESPONSE).toBe(0);
    expect(res.answers).toHaveLength(100);
  });

  it("does not set TC when everything fits", () => {
    expect(ask(zoneWithWeb(3), queryPacket("web.skein.local", "A")).flag_tc).toBe(false);
  });
});
