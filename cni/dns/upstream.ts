/**
 * Forwarding names outside the domain to the node's upstream resolvers.
 *
 * Each attempt uses a fresh socket (a random source port) and a fresh random
 * ID, and accepts only a response from the server it asked whose question
 * matches (RFC 5452), so answers cannot be spoofed into the cache by guessing
 * one of them. Upstreams are tried in order, each within its share of one
 * overall deadline; when none answers the client gets SERVFAIL, and with no
 * upstream at all REFUSED (the responder is not a resolver then). Queries that
 * came over TCP go upstream over TCP, so big answers are never cut twice.
 * The number of queries in flight is capped: past it, SERVFAIL at once.
 */
import { randomInt } from "node:crypto";
import { createSocket } from "node:dgram";
import { isIP, Socket } from "node:net";
import { decode, type Question } from "dns-packet";
import { InvalidInputError } from "../../kit/errors.ts";
import { splitHostPort } from "../../kit/host-port.ts";
import { ForwardCache } from "./forward-cache.ts";
import type { DnsMetrics } from "./metrics.ts";
import { normaliseName } from "./names.ts";
import { MAX_TCP_MESSAGE, RCODE, type Rcode, type Transport } from "./query.ts";

export interface Upstream {
  address: string;
  port: number;
}

/** "10.96.0.10", "10.96.0.10:53", "fd00::10", "[fd00::10]:53" (the Network CRD's forms). */
export function parseUpstream(text: string): Upstream {
  const endpoint = ipEndpoint(text);
  if (!endpoint || endpoint.port === 0) {
    throw new InvalidInputError(
      `upstream ${JSON.stringify(text)} is not an IP address with an optional port: use 10.96.0.10, 10.96.0.10:53 or [fd00::10]:53`,
    );
  }
  return endpoint;
}

/** An IP address with an optional port (default 53, the DNS port; 0 is the caller's to refuse). */
export function ipEndpoint(text: string): Upstream | undefined {
  const parts = splitHostPort(text);
  if (!parts || isIP(parts.host) === 0) return undefined;
  return { address: parts.host, port: parts.port ?? 53 };
}

/** The `nameserver` lines of a resolv.conf, in order (scoped IPv6 addresses are skipped). */
export function resolvConfServers(text: string): Upstream[] {
  const servers: Upstream[] = [];
  for (const line of text.split("\n")) {
    const match = /^\s*nameserver\s+(\S+)/.exec(line);
    // A scoped address (fe80::1%eth0) names an interface of the node, not of this namespace.
    if (match && !match[1]!.includes("%") && isIP(match[1]!) !== 0)
      servers.push({ address: match[1]!, port: 53 });
  }
  return servers;
}

export interface ForwarderOptions {
  /** Read on every query, so changes to the Network take effect at once. */
  upstreams: () => readonly Upstream[];
  /** Deadline for one query across all upstreams. Default 2000 ms. */
  timeoutMs?: number;
  /** Longest wait for one upstream. Default 1000 ms. */
  attemptTimeoutMs?: number;
  /** Queries in flight upstream at most. Default 512. */
  maxInFlight?: number;
  cache?: ForwardCache;
  metrics?: DnsMetrics;
}

export type ForwardResult = { kind: "answer"; response: Buffer } | { kind: "fail"; rcode: Rcode };

export class Forwarder {
  readonly cache: ForwardCache;
  private inFlight = 0;
  private readonly timeoutMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly maxInFlight: number;

  constructor(private readonly options: ForwarderOptions) {
    this.cache = options.cache ?? new ForwardCache();
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? 1000;
    this.maxInFlight = options.maxInFlight ?? 512;
  }

  /**
   * An upstream answer to `query` carrying the client's ID, or the rcode to
   * answer with. `limit` is the size the client takes (for cached answers).
   */
  async forward(
    query: Buffer,
    question: Question,
    transport: Transport,
    limit: number,
  ): Promise<ForwardResult> {
    const metrics = this.options.metrics;
    const cached = this.cache.get(query, limit);
    metrics?.forwardCache.labels(cached ? "hit" : "miss").inc();
    if (cached) return { kind: "answer", response: cached };
    const upstreams = this.options.upstreams();
    if (upstreams.length === 0) return { kind: "fail", rcode: RCODE.REFUSED };
    if (this.inFlight >= this.maxInFlight) return { kind: "fail", rcode: RCODE.SERVFAIL };
    this.inFlight++;
    const started = performance.now();
    const deadline = started + this.timeoutMs;
    let result = "timeout";
    try {
      for (const upstream of upstreams) {
        const remaining = deadline - performance.now();
        if (remaining <= 0) break;
        const wait = Math.min(this.attemptTimeoutMs, remaining);
        const id = randomInt(0, 65536);
        const outgoing = Buffer.from(query);
        outgoing.writeUInt16BE(id, 0);
        try {
          const response =
            transport === "tcp"
              ? await askTcp(upstream, outgoing, wait)
              : await askUdp(upstream, outgoing, wait);
          if (!answers(response, id, question)) {
            result = "error";
            continue;
          }
          response.writeUInt16BE(query.readUInt16BE(0), 0);
          this.cache.put(query, response);
          result = "ok";
          return { kind: "answer", response };
        } catch (err) {
          result = err instanceof AttemptTimeout ? "timeout" : "error";
        }
      }
      return { kind: "fail", rcode: RCODE.SERVFAIL };
    } finally {
      this.inFlight--;
      metrics?.upstreamSeconds.labels(result).observe((performance.now() - started) / 1000);
    }
  }
}

class AttemptTimeout extends Error {}

/** True when `response` answers the query with `id` and `question` (RFC 5452 §9.1). */
function answers(response: Buffer, id: number, question: Question): boolean {
  if (response.length < 12 || response.readUInt16BE(0) !== id || !(response[2]! & 0x80)) return false;
  try {
    const asked = decode(response).questions?.[0];
    return (
      asked !== undefined &&
      normaliseName(asked.name) === normaliseName(question.name) &&
      asked.type === question.type &&
      (asked.class ?? "IN") === (question.class ?? "IN")
    );
  } catch {
    return false;
  }
}

function askUdp(upstream: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIP(upstream.address) === 6 ? "udp6" : "udp4");
    const id = query.readUInt16BE(0);
    const timer = setTimeout(() => finish(new AttemptTimeout(`no answer within ${timeoutMs} ms`)), timeoutMs);
    let done = false;
    const finish = (err?: Error, response?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(response!);
    };
    socket.on("error", (err) => finish(err));
    socket.on("message", (message) => {
      // connect() makes the kernel drop other senders; a stray ID is ignored, not fatal.
      if (message.length >= 2 && message.readUInt16BE(0) === id) finish(undefined, message);
    });
    socket.connect(upstream.port, upstream.address, () => {
      socket.send(query, (err) => {
        if (err) finish(err);
      });
    });
  });
}

function askTcp(upstream: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    let buffered = Buffer.alloc(0);
    let done = false;
    const timer = setTimeout(() => finish(new AttemptTimeout(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const finish = (err?: Error, response?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(response!);
    };
    socket.on("error", (err) => finish(err));
    socket.on("close", () => finish(new Error("upstream closed the connection before answering")));
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length > MAX_TCP_MESSAGE + 2) return finish(new Error("upstream answer too long"));
      if (buffered.length < 2) return;
      const length = buffered.readUInt16BE(0);
      if (buffered.length >= 2 + length) finish(undefined, Buffer.from(buffered.subarray(2, 2 + length)));
    });
    socket.connect(upstream.port, upstream.address, () => {
      const framed = Buffer.alloc(2 + query.length);
      framed.writeUInt16BE(query.length, 0);
      query.copy(framed, 2);
      socket.write(framed);
    });
  });
}
