/**
 * Bad input, in bulk: random and mutated packets through the query handler and
 * through a live responder. Nothing may throw or crash, what is answered must
 * be a well-formed response within the size limit, and memory must stay flat.
 * The PRNG is seeded, so a failure names the packet that caused it.
 */
import { createSocket } from "node:dgram";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decode } from "dns-packet";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../../kit/k8s/testing.ts";
import { freePort } from "../../test/fixtures/apiserver.ts";
import { type OwnedProcess, startProcess } from "../../test/fixtures/process.ts";
import { sharedApiServer } from "../../test/fixtures/shared.ts";
import { handleQuery } from "./query.ts";
import { DnsResponder } from "./responder.ts";
import {
  addressesOf,
  buildDnsExecutable,
  decodeResponse,
  queryPacket,
  TestZone,
  tcpAsk,
  udpAsk,
} from "./testing.ts";

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEEDS = [
  queryPacket("web.skein.local", "A"),
  queryPacket("web.skein.local", "AAAA", { edns: 4096, dnssecOk: true }),
  queryPacket("2.1.244.10.in-addr.arpa", "PTR"),
  queryPacket("example.org", "A", { edns: 1232 }),
  queryPacket("skein.local", "SOA"),
  queryPacket("a.b.c.d.skein.local", "ANY"),
];

/** A packet: random bytes, or a real query with bytes flipped, cut, repeated or header counts blown up. */
function fuzzPacket(rand: () => number): Buffer {
  const byte = () => Math.floor(rand() * 256);
  const pick = rand();
  if (pick < 0.2) return Buffer.from(Array.from({ length: Math.floor(rand() * 600) }, byte));
  const packet = Buffer.from(SEEDS[Math.floor(rand() * SEEDS.length)]!);
  // Never a response, so the mutation reaches the parser rather than the QR check.
  const mutated = pick < 0.8 ? mutate(packet, rand, byte) : blowUpCounts(packet, rand);
  if (mutated.length >= 3) mutated[2] = mutated[2]! & 0x7f;
  return mutated;
}

function mutate(packet: Buffer, rand: () => number, byte: () => number): Buffer {
  let out = packet;
  const edits = 1 + Math.floor(rand() * 4);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(rand() * out.length);
    const kind = rand();
    if (kind < 0.5) out[at] = byte();
    else if (kind < 0.7) out = out.subarray(0, at);
    else if (kind < 0.85)
      out = Buffer.concat([out, Buffer.from(Array.from({ length: Math.floor(rand() * 40) }, byte))]);
    // A compression pointer, possibly to itself or forward.
    else if (at + 1 < out.length) {
      out[at] = 0xc0 | (byte() & 0x3f);
      out[at + 1] = byte();
    }
  }
  return Buffer.from(out);
}

function blowUpCounts(packet: Buffer, rand: () => number): Buffer {
  const out = Buffer.from(packet);
  for (const offset of [4, 6, 8, 10])
    if (rand() < 0.5) out.writeUInt16BE(rand() < 0.5 ? 0xffff : Math.floor(rand() * 8), offset);
  return out;
}

function zone(): TestZone {
  const z = new TestZone();
  for (let i = 1; i <= 50; i++) z.addPod(`web-${i}`, [`10.244.1.${i}`, `fd00::${i}`], ["web"]);
  return z;
}

describe("fuzzed packets through handleQuery", () => {
  it("never throws, and answers within the limit with a decodable response", () => {
    const rand = prng(0x5eed);
    const z = zone();
    let answered = 0;
    for (let i = 0; i < 10_000; i++) {
      const packet = fuzzPacket(rand);
      const hex = packet.toString("hex");
      let decision: ReturnType<typeof handleQuery>;
      try {
        decision = handleQuery(packet, z, i % 2 ? "udp" : "tcp");
      } catch (err) {
        throw new Error(`handleQuery threw on ${hex}: ${err}`);
      }
      if (decision.kind !== "local") continue;
      let response: Buffer;
      try {
        response = decision.encode(i);
      } catch (err) {
        throw new Error(`encoding the answer to ${hex} threw: ${err}`);
      }
      expect(response.length, hex).toBeLessThanOrEqual(i % 2 ? 1232 : 65535);
      expect(response.readUInt16BE(0), hex).toBe(packet.readUInt16BE(0));
      expect(response[2]! & 0x80, hex).toBe(0x80);
      expect(() => decode(response), hex).not.toThrow();
      answered++;
    }
    // Most mutants still parse as something: the check above saw real work.
    expect(answered).toBeGreaterThan(2_500);
  });
});

describe("fuzzed packets against a live responder", () => {
  const z = zone();
  let responder: DnsResponder;
  let port = 0;

  beforeAll(async () => {
    responder = new DnsResponder({
      listen: [{ address: "127.0.0.1", port: 0 }],
      zone: z,
      upstreams: () => [],
      allowedCidrs: () => [],
      registry: new Registry(),
    });
    await responder.start();
    port = responder.addresses()[0]!.port;
  });
  afterAll(async () => {
    await responder.stop();
  });

  it("survives a flood of garbage over UDP and TCP with memory bounded, and still answers", async () => {
    const grown = await flood(port, () => process.memoryUsage().heapUsed);
    expect(grown).toBeLessThan(64 * 1024 * 1024);
    const answer = await udpAsk(port, queryPacket("web-7.default.skein.local", "A"));
    expect(addressesOf(answer!)).toEqual(["10.244.1.7"]);
    const [all] = await tcpAsk(port, [queryPacket("web.skein.local", "A")]);
    expect(addressesOf(all!)).toHaveLength(50);
  });
});

/**
 * 35,000 fuzzed datagrams and 20 TCP connections of fuzzed messages at
 * `port`; returns how much `memory` grew over all but the first 5,000.
 */
async function flood(port: number, memory: () => number): Promise<number> {
  const rand = prng(0xf100d);
  const socket = createSocket("udp4");
  socket.on("message", () => {});
  const burst = async (count: number) => {
    for (let i = 0; i < count; i++) {
      socket.send(fuzzPacket(rand), port, "127.0.0.1");
      // Let the responder drain its socket now and then (the kernel drops the rest, as it would).
      if (i % 200 === 0) await new Promise((r) => setImmediate(r));
    }
  };
  try {
    await burst(5_000);
    await new Promise((r) => setTimeout(r, 200));
    const before = memory();
    await burst(30_000);
    for (let c = 0; c < 20; c++) {
      const tcp = new Socket();
      await new Promise<void>((r) => tcp.connect(port, "127.0.0.1", () => r()));
      tcp.on("error", () => {});
      for (let i = 0; i < 20; i++) {
        const p = fuzzPacket(rand);
        const framed = Buffer.alloc(2 + p.length);
        framed.writeUInt16BE(rand() < 0.1 ? 0xffff : p.length, 0);
        p.copy(framed, 2);
        tcp.write(framed);
      }
      tcp.destroy();
    }
    await new Promise((r) => setTimeout(r, 300));
    return memory() - before;
  } finally {
    socket.close();
  }
}

/** A process's resident memory in bytes, from /proc. */
function residentBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}

describe("fuzzed packets against the Bun-compiled DNS program", () => {
  const api = sharedApiServer();
  const dir = mkdtempSync(join(tmpdir(), "skein-dns-fuzz-"));
  let dns: OwnedProcess;
  let port = 0;

  beforeAll(async () => {
    port = await freePort();
    dns = startProcess(
      "skein-dns",
      [
        await buildDnsExecutable(dir),
        `--kubeconfig=${api.kubeconfigPath}`,
        `--network=skt${process.pid}-fuzz`,
        `--listen=127.0.0.1:${port}`,
        "--no-probes",
      ],
      join(dir, "dns.log"),
    );
    await eventually(
      "skein-dns answering",
      async () =>
        (await udpAsk(port, queryPacket("nobody.skein.local", "A")).catch(() => undefined)) !== undefined,
      60_000,
    );
  }, 90_000);
  afterAll(async () => {
    await dns?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("survives the same flood, its memory bounded, and still answers", async () => {
    const grown = await flood(port, () => residentBytes(dns.pid));
    expect(dns.exited()).toBe(false);
    expect(grown).toBeLessThan(64 * 1024 * 1024);
    const answer = decodeResponse((await udpAsk(port, queryPacket("nobody.skein.local", "A")))!);
    expect(answer.rcode).toBe("NXDOMAIN");
    const [overTcp] = await tcpAsk(port, [queryPacket("nobody.skein.local", "A")]);
    expect(decodeResponse(overTcp!).rcode).toBe("NXDOMAIN");
  });
});
