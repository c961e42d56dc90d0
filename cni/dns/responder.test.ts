import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DnsListenError, DnsResponder } from "./responder.ts";
import { addressesOf, decodeResponse, queryPacket, TestZone, tcpAsk, udpAsk } from "./testing.ts";

describe("DnsResponder on loopback", () => {
  const zone = new TestZone();
  const registry = new Registry();
  let responder: DnsResponder;
  let port = 0;

  beforeAll(async () => {
    for (let i = 1; i <= 3; i++) zone.addPod(`web-${i}`, [`10.244.${i}.2`], ["web"]);
    for (let i = 1; i <= 80; i++) zone.addPod(`big-${i}`, [`10.244.100.${i}`], ["big"]);
    responder = new DnsResponder({
      listen: [{ address: "127.0.0.1", port: 0 }],
      zone,
      upstreams: () => [],
      allowedCidrs: () => [],
      registry,
    });
    await responder.start();
    port = responder.addresses()[0]!.port;
  });
  afterAll(async () => {
    await responder.stop();
  });

  it("listens on UDP and TCP on one port", () => {
    expect(responder.addresses()).toEqual([
      { transport: "udp", address: "127.0.0.1", port },
      { transport: "tcp", address: "127.0.0.1", port },
    ]);
  });

  it("answers over UDP, rotating across queries, from the cache or not", async () => {
    const firsts: string[] = [];
    for (let i = 0; i < 6; i++) {
      const answer = await udpAsk(port, queryPacket("web.skein.local", "A", { id: i }));
      expect(decodeResponse(answer!).id).toBe(i);
      firsts.push(addressesOf(answer!)[0]!);
    }
    expect(firsts).toEqual([
      "10.244.1.2",
      "10.244.2.2",
      "10.244.3.2",
      "10.244.1.2",
      "10.244.2.2",
      "10.244.3.2",
    ]);
  });

  it("stops answering for a pod as soon as its record goes", async () => {
    zone.records.delete("default/web-2");
    for (let i = 0; i < 3; i++) {
      expect(addressesOf((await udpAsk(port, queryPacket("web.skein.local", "A")))!)).not.toContain(
        "10.244.2.2",
      );
    }
    zone.addPod("web-2", ["10.244.2.2"], ["web"]);
  });

  it("truncates over UDP and gives everything over TCP, pipelined", async () => {
    const udp = decodeResponse((await udpAsk(port, queryPacket("big.skein.local", "A")))!);
    expect(udp.flag_tc).toBe(true);
    const answers = await tcpAsk(port, [
      queryPacket("big.skein.local", "A", { id: 1 }),
      queryPacket("nope.skein.local", "A", { id: 2 }),
    ]);
    const byId = new Map(answers.map((a) => [decodeResponse(a).id, decodeResponse(a)]));
    expect(byId.get(1)?.answers).toHaveLength(80);
    expect(byId.get(1)?.flag_tc).toBe(false);
    expect(byId.get(2)?.rcode).toBe("NXDOMAIN");
  });

  it("refuses names outside the domain when it has no upstream", async () => {
    expect(decodeResponse((await udpAsk(port, queryPacket("example.org", "A")))!).rcode).toBe("REFUSED");
  });

  it("stays silent for short datagrams and responses, and counts them", async () => {
    expect(await udpAsk(port, Buffer.from([1, 2, 3]), 300)).toBeUndefined();
    const response = queryPacket("web.skein.local", "A");
    response[2] = response[2]! | 0x80;
    expect(await udpAsk(port, response, 300)).toBeUndefined();
    const metrics = await registry.getSingleMetricAsString("skein_dns_dropped_total");
    expect(metrics).toMatch(/reason="short"} [1-9]/);
    expect(metrics).toMatch(/reason="response"} [1-9]/);
  });

  it("exports query, response and record metrics", async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/skein_dns_queries_total{transport="udp"} [1-9]/);
    expect(text).toMatch(/skein_dns_queries_total{transport="tcp"} [1-9]/);
    expect(text).toMatch(/skein_dns_responses_total{rcode="NOERROR"} [1-9]/);
    expect(text).toMatch(/skein_dns_responses_total{rcode="NXDOMAIN"} [1-9]/);
    // 3 + 80 shared-name records and 83 <pod>.<namespace> records.
    expect(text).toMatch(/skein_dns_records 166/);
    expect(text).toMatch(/skein_dns_pods 83/);
  });

  it("closes a TCP connection that sends an impossible stream only after its idle timeout, answering nothing", async () => {
    const answers = await tcpAsk(port, [Buffer.from([0xff, 0xff])], 300);
    expect(answers).toEqual([]);
  });

  it("fails to start with a message that says what to check", async () => {
    const other = new DnsResponder({
      listen: [{ address: "127.0.0.1", port }],
      zone,
      upstreams: () => [],
      allowedCidrs: () => [],
      registry: new Registry(),
    });
    await expect(other.start()).rejects.toThrow(DnsListenError);
    await expect(other.start()).rejects.toThrow(/no other DNS server holds the port/);
  });
});
