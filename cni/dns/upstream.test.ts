import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer, type Server } from "node:net";
import { decode, encode, type Question } from "dns-packet";
import { afterEach, describe, expect, it } from "vitest";
import { InvalidInputError } from "../../kit/errors.ts";
import { queryPacket } from "./testing.ts";
import { Forwarder, parseUpstream, resolvConfServers, type Upstream } from "./upstream.ts";

describe("parseUpstream", () => {
  it.each([
    ["10.96.0.10", { address: "10.96.0.10", port: 53 }],
    ["10.96.0.10:5353", { address: "10.96.0.10", port: 5353 }],
    ["fd00::10", { address: "fd00::10", port: 53 }],
    ["[fd00::10]:53", { address: "fd00::10", port: 53 }],
  ])("%j", (text, want) => {
    expect(parseUpstream(text)).toEqual(want);
  });

  it.each([["dns.example"], ["10.0.0.1:0"], ["10.0.0.1:70000"], ["[fd00::1]"], [""], ["10.0.0.256"]])(
    "rejects %j",
    (text) => {
      expect(() => parseUpstream(text)).toThrow(InvalidInputError);
    },
  );
});

describe("resolvConfServers", () => {
  it("takes nameserver lines in order and skips the rest", () => {
    const text =
      "# comment\nsearch x.local\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\n  nameserver fd00::53\noptions ndots:5\n";
    expect(resolvConfServers(text)).toEqual([
      { address: "10.0.0.2", port: 53 },
      { address: "fd00::53", port: 53 },
    ]);
  });
});

type Behaviour = "answer" | "silent" | "spoof-then-answer" | "wrong-question";

/** A scripted upstream on loopback, UDP and TCP on one port. */
async function fakeUpstream(
  behaviour: Behaviour,
): Promise<{ upstream: Upstream; asked: () => number; close(): Promise<void> }> {
  let count = 0;
  const answer = (query: Buffer, question?: Question): Buffer => {
    const q = decode(query);
    const asked = q.questions?.[0];
    return encode({
      type: "response",
      id: q.id ?? 0,
      flags: 0x0180,
      questions: [question ?? asked!],
      answers: [{ type: "A", name: asked!.name, ttl: 60, data: "192.0.2.53" }],
    });
  };
  const udp: UdpSocket = createSocket("udp4");
  udp.on("message", (msg, rinfo) => {
    count++;
    if (behaviour === "silent") return;
    if (behaviour === "spoof-then-answer") {
      const spoof = answer(msg);
      spoof.writeUInt16BE((msg.readUInt16BE(0) + 1) & 0xffff, 0);
      udp.send(spoof, rinfo.port, rinfo.address);
    }
    const q = behaviour === "wrong-question" ? { name: "evil.example", type: "A" as const } : undefined;
    udp.send(answer(msg, q), rinfo.port, rinfo.address);
  });
  const tcp: Server = createServer((conn) => {
    conn.on("data", (data: Buffer) => {
      count++;
      const msg = data.subarray(2, 2 + data.readUInt16BE(0));
      const reply = answer(msg);
      const framed = Buffer.alloc(2 + reply.length);
      framed.writeUInt16BE(reply.length, 0);
      reply.copy(framed, 2);
      conn.end(framed);
    });
  });
  // One port for UDP and TCP: a free UDP port may be taken for TCP, so try until both bind.
  let port = 0;
  for (let attempt = 0; ; attempt++) {
    const candidate = createSocket("udp4");
    await new Promise<void>((r) => candidate.bind(0, "127.0.0.1", () => r()));
    const tryPort = candidate.address().port;
    candidate.close();
    const ok = await new Promise<boolean>((r) => {
      tcp.once("error", () => r(false));
      tcp.listen(tryPort, "127.0.0.1", () => r(true));
    });
    if (
      ok &&
      (await new Promise<boolean>((r) => {
        udp.once("error", () => r(false));
        udp.bind(tryPort, "127.0.0.1", () => r(true));
      }))
    ) {
      port = tryPort;
      break;
    }
    if (ok) await new Promise((r) => tcp.close(r));
    if (attempt > 20) throw new Error("no free port for the fake upstream");
  }
  return {
    upstream: { address: "127.0.0.1", port },
    asked: () => count,
    close: async () => {
      udp.close();
      await new Promise((r) => tcp.close(r));
    },
  };
}

/** A loopback port nobody listens on (ICMP port unreachable → an error at once). */
async function closedPort(): Promise<Upstream> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  const port = s.address().port;
  s.close();
  return { address: "127.0.0.1", port };
}

describe("Forwarder", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });
  const start = async (b: Behaviour) => {
    const f = await fakeUpstream(b);
    cleanups.push(f.close);
    return f;
  };
  const q = (name = "example.org", id = 777) => {
    const message = queryPacket(name, "A", { id });
    return { message, question: decode(message).questions![0]! };
  };

  it("relays the upstream answer with the client's ID and caches it", async () => {
    const up = await start("answer");
    const forwarder = new Forwarder({ upstreams: () => [up.upstream] });
    const { message, question } = q();
    const first = await forwarder.forward(message, question, "udp", 512);
    expect(first.kind).toBe("answer");
    if (first.kind !== "answer") return;
    expect(decode(first.response)).toMatchObject({ id: 777, answers: [{ data: "192.0.2.53" }] });
    const second = await forwarder.forward(
      queryPacket("example.org", "A", { id: 778 }),
      question,
      "udp",
      512,
    );
    expect(second.kind === "answer" && decode(second.response).id).toBe(778);
    expect(up.asked()).toBe(1);
  });

  it("moves on to the next upstream when one is silent", async () => {
    const silent = await start("silent");
    const good = await start("answer");
    const forwarder = new Forwarder({
      upstreams: () => [silent.upstream, good.upstream],
      attemptTimeoutMs: 200,
    });
    const { message, question } = q();
    const began = Date.now();
    const result = await forwarder.forward(message, question, "udp", 512);
    expect(result.kind).toBe("answer");
    expect(Date.now() - began).toBeGreaterThanOrEqual(190);
    expect(Date.now() - began).toBeLessThan(1500);
  });

  it("answers SERVFAIL within its deadline when every upstream is silent", async () => {
    const silent = await start("silent");
    const down = new Forwarder({
      upstreams: () => [silent.upstream, silent.upstream],
      timeoutMs: 300,
      attemptTimeoutMs: 1000,
    });
    const { message, question } = q();
    const began = Date.now();
    expect(await down.forward(message, question, "udp", 512)).toEqual({ kind: "fail", rcode: 2 });
    const took = Date.now() - began;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(1000);
  });

  it("fails fast on a closed port, and refuses when it has no upstream", async () => {
    const { message, question } = q();
    const none = new Forwarder({ upstreams: () => [] });
    expect(await none.forward(message, question, "udp", 512)).toEqual({ kind: "fail", rcode: 5 });
    const closed = await closedPort();
    const refused = new Forwarder({ upstreams: () => [closed], timeoutMs: 2000 });
    const began = Date.now();
    expect(await refused.forward(message, question, "udp", 512)).toEqual({ kind: "fail", rcode: 2 });
    expect(Date.now() - began).toBeLessThan(1000);
  });

  it("ignores answers with a wrong ID or another question", async () => {
    const spoofing = await start("spoof-then-answer");
    const forwarder = new Forwarder({ upstreams: () => [spoofing.upstream] });
    const { message, question } = q();
    const result = await forwarder.forward(message, question, "udp", 512);
    expect(result.kind === "answer" && decode(result.response).answers?.[0]).toMatchObject({
      data: "192.0.2.53",
    });

    const lying = await start("wrong-question");
    const strict = new Forwarder({ upstreams: () => [lying.upstream], timeoutMs: 500 });
    expect(await strict.forward(message, question, "udp", 512)).toEqual({ kind: "fail", rcode: 2 });
  });

  it("asks over TCP when the client did", async () => {
    const up = await start("answer");
    const forwarder = new Forwarder({ upstreams: () => [up.upstream] });
    const { message, question } = q("tcp.example.org");
    const result = await forwarder.forward(message, question, "tcp", 65535);
    expect(result.kind === "answer" && decode(result.response).answers?.[0]).toMatchObject({
      name: "tcp.example.org",
    });
  });

  it("answers SERVFAIL at once past its in-flight cap", async () => {
    const silent = await start("silent");
    const forwarder = new Forwarder({ upstreams: () => [silent.upstream], timeoutMs: 300, maxInFlight: 2 });
    const asks = [1, 2, 3].map((i) => {
      const { message, question } = q(`n${i}.example.org`, i);
      return forwarder.forward(message, question, "udp", 512);
    });
    const third = await Promise.race([asks[2]!, new Promise((r) => setTimeout(() => r("slow"), 100))]);
    expect(third).toEqual({ kind: "fail", rcode: 2 });
    await Promise.all(asks);
  });
});
