/**
 * The node's DNS responder: UDP and TCP sockets on the listen addresses, the
 * thin shell around `handleQuery` (decides), `AnswerCache` (remembers local
 * answers), `Forwarder` (asks upstream) and `ClientPolicy` (who may ask).
 *
 * Bounded whatever arrives: a datagram is handled and forgotten; TCP takes at
 * most `maxConnections` connections, each idle-timed, holding at most one
 * message of 64 KiB and a few queries in flight; upstream queries in flight
 * and both caches are capped. Nothing a client sends can throw out of a
 * handler: an unexpected error drops that one query and is counted.
 */
import { createServer, isIP, type Server, type Socket } from "node:net";
import type { Registry } from "prom-client";
import { describeError, SkeinError } from "../../kit/errors.ts";
import { createLogger, type Logger } from "../../kit/log.ts";
import { AnswerCache, type CachedAnswer } from "./answer-cache.ts";
import { ClientPolicy } from "./clients.ts";
import { bindDatagram, type DatagramSocket } from "./datagram/index.ts";
import { ForwardCache } from "./forward-cache.ts";
import { DnsMetrics, type DropReason } from "./metrics.ts";
import { type Decision, handleQuery, MAX_TCP_MESSAGE, RCODE, type Transport, type Zone } from "./query.ts";
import { Forwarder, type Upstream } from "./upstream.ts";

export interface ListenAddress {
  address: string;
  /** 53 by default; 0 picks a free port (tests). */
  port?: number;
}

export interface DnsResponderOptions {
  listen: readonly ListenAddress[];
  /** The names served; read on every query. */
  zone: Zone;
  /** Servers for every other name; read on every forwarded query. */
  upstreams: () => readonly Upstream[];
  /** Networks whose clients are answered besides the node itself (the overlay CIDR); read every few seconds. */
  allowedCidrs: () => readonly string[];
  /** Answer clients from anywhere. Off by default: the responder is not an open resolver. */
  allowAnyClient?: boolean;
  registry: Registry;
  logger?: Logger;
  /** Upstream deadline for one query (default 2000 ms) and for one upstream (default 1000 ms). */
  upstreamTimeoutMs?: number;
  upstreamAttemptTimeoutMs?: number;
  maxTcpConnections?: number;
  tcpIdleTimeoutMs?: number;
}

export class DnsListenError extends SkeinError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("DnsListenFailed", message, options);
  }
}

/** Queries one TCP connection may have in flight before it is closed as abusive. */
const MAX_TCP_PENDING = 32;

export class DnsResponder {
  readonly metrics: DnsMetrics;
  private readonly log: Logger;
  private readonly answers = new AnswerCache();
  private readonly forwarder: Forwarder;
  private readonly clients: ClientPolicy;
  private readonly udp: DatagramSocket[] = [];
  private readonly tcp: Server[] = [];
  private readonly connections = new Set<Socket>();
  private bound: { transport: Transport; address: string; port: number }[] = [];

  constructor(private readonly options: DnsResponderOptions) {
    this.log = options.logger ?? createLogger("dns");
    this.metrics = new DnsMetrics(options.registry, () => options.zone.records.counts());
    this.forwarder = new Forwarder({
      upstreams: options.upstreams,
      timeoutMs: options.upstreamTimeoutMs ?? 2000,
      attemptTimeoutMs: options.upstreamAttemptTimeoutMs ?? 1000,
      cache: new ForwardCache(),
      metrics: this.metrics,
    });
    this.clients = new ClientPolicy({
      cidrs: options.allowedCidrs,
      allowAll: options.allowAnyClient ?? false,
    });
  }

  /** Where the responder listens, once started (with the ports the kernel picked for port 0). */
  addresses(): { transport: Transport; address: string; port: number }[] {
    return [...this.bound];
  }

  async start(): Promise<void> {
    try {
      for (const listen of this.options.listen) await this.listenOnFreeOrGiven(listen);
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.log.info({ listen: this.bound }, "DNS responder listening");
  }

  async stop(): Promise<void> {
    for (const socket of this.udp.splice(0)) await socket.close();
    for (const conn of this.connections) conn.destroy();
    this.connections.clear();
    for (const server of this.tcp.splice(0))
      await new Promise<void>((resolve) => server.close(() => resolve()));
    this.bound = [];
  }

  /**
   * Port 0 asks for any free port, the same for UDP and TCP: the one UDP got
   * may be taken for TCP, so try a few fresh ones before giving up.
   */
  private async listenOnFreeOrGiven(listen: ListenAddress): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.listenOn(listen);
        return;
      } catch (err) {
        const clash =
          err instanceof DnsListenError && (err.cause as NodeJS.ErrnoException)?.code === "EADDRINUSE";
        if (listen.port !== 0 || !clash || attempt >= 5) throw err;
      }
    }
  }

  private async listenOn(listen: ListenAddress): Promise<void> {
    const family = isIP(listen.address);
    if (family === 0)
      throw new DnsListenError(`listen address ${JSON.stringify(listen.address)} is not an IP address`);
    const port = listen.port ?? 53;
    const what = `${family === 6 ? `[${listen.address}]` : listen.address}:${port}`;
    const hint = "check that the address is on this node and no other DNS server holds the port";
    let udp: DatagramSocket;
    try {
      udp = await bindDatagram({
        address: listen.address,
        family: family === 6 ? 6 : 4,
        port,
        onMessage: (message, port, address) => this.onDatagram(udp, message, port, address),
        // Errors on a bound socket (a send to a vanished client) concern one datagram, never the responder.
        onError: (err) => this.log.debug({ err: describeError(err) }, "udp socket error"),
      });
    } catch (cause) {
      throw new DnsListenError(`cannot listen for DNS on udp ${what}: ${describeError(cause)}; ${hint}`, {
        cause,
      });
    }
    this.udp.push(udp);
    const udpPort = udp.port;
    this.bound.push({ transport: "udp", address: listen.address, port: udpPort });

    const server = createServer((conn) => this.onConnection(conn));
    server.maxConnections = this.options.maxTcpConnections ?? 256;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        // Same port as UDP, so port 0 still means one port for both.
        server.listen(udpPort, listen.address, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (cause) {
      // Undo this address's UDP half, so a failed listen leaves nothing bound.
      await this.udp.pop()?.close();
      this.bound.pop();
      throw new DnsListenError(`cannot listen for DNS on tcp ${what}: ${describeError(cause)}; ${hint}`, {
        cause,
      });
    }
    server.on("error", (err) => this.log.warn({ err: describeError(err) }, "tcp server error"));
    this.tcp.push(server);
    this.bound.push({ transport: "tcp", address: listen.address, port: udpPort });
  }

  private drop(reason: DropReason): void {
    this.metrics.drop(reason);
  }

  /**
   * The hot path: a repeated local question costs a map lookup and a copy of
   * bytes built earlier; the rest is the runtime receiving and sending the
   * datagram (measured with perf under Node: Skein's own code is under a tenth
   * of the time; hence Bun and its batches, datagram/bun.ts). It creates no
   * closure (where function names are kept, as under tsx, each one costs an
   * Object.defineProperty) and touches prom-client only at scrape time.
   */
  private onDatagram(socket: DatagramSocket, message: Buffer, port: number, address: string): void {
    this.metrics.query("udp");
    try {
      if (!this.clients.allows(address)) {
        this.drop("client");
        return;
      }
      if (message.length < 12) {
        this.drop("short");
        return;
      }
      const zone = this.options.zone;
      const answer = this.answers.get(message, zone.version);
      if (answer) socket.send(this.localResponse(answer, message, true), port, address);
      else this.onUncachedDatagram(socket, message, port, address);
    } catch (err) {
      this.failed(err);
    }
  }

  private onUncachedDatagram(socket: DatagramSocket, message: Buffer, port: number, address: string): void {
    const zone = this.options.zone;
    const version = zone.version;
    const decision = handleQuery(message, zone, "udp");
    if (decision.kind !== "local") {
      const reply = (response: Buffer) => socket.send(response, port, address);
      this.other(decision, message, "udp", reply).catch((err: unknown) => this.failed(err));
      return;
    }
    const answer = cachedAnswer(decision);
    // Only answers worth repeating are kept: floods of garbage must not push out real names.
    const keep = decision.rcode === RCODE.NOERROR || decision.rcode === RCODE.NXDOMAIN;
    if (keep) this.answers.set(message, version, answer);
    socket.send(this.localResponse(answer, message, keep), port, address);
  }

  private failed(err: unknown): void {
    this.log.warn({ err: describeError(err) }, "query handling failed");
    this.drop("error");
  }

  /** The answer for this query: next rotation, the query's ID; `cached` answers keep their encodings. */
  private localResponse(answer: CachedAnswer, query: Buffer, cached: boolean): Buffer {
    const rotation = answer.rotation
      ? this.options.zone.records.nextRotation(answer.rotation.name, answer.rotation.family) %
        answer.rotation.variants
      : 0;
    const encoded = cached ? this.answers.encoding(answer, rotation) : answer.build(rotation);
    const response = Buffer.allocUnsafe(encoded.length);
    encoded.copy(response);
    response[0] = query[0]!;
    response[1] = query[1]!;
    this.metrics.response(answer.rcode);
    if (answer.records) this.metrics.served(answer.records);
    return response;
  }

  /** Drops and forwards; resolves once the reply (if any) is handed to `reply`. */
  private async other(
    decision: Exclude<Decision, { kind: "local" }>,
    query: Buffer,
    transport: Transport,
    reply: (response: Buffer) => void,
  ): Promise<void> {
    if (decision.kind === "drop") return this.drop(decision.reason);
    const result = await this.forwarder.forward(query, decision.question, transport, decision.limit);
    if (result.kind === "answer") {
      this.metrics.relayed(result.response);
      reply(result.response);
      return;
    }
    this.metrics.response(result.rcode);
    reply(decision.fail(result.rcode));
  }

  private onConnection(conn: Socket): void {
    if (!this.clients.allows(conn.remoteAddress ?? "")) {
      this.drop("client");
      conn.destroy();
      return;
    }
    this.connections.add(conn);
    conn.setNoDelay(true);
    conn.setTimeout(this.options.tcpIdleTimeoutMs ?? 10_000, () => conn.destroy());
    conn.on("close", () => this.connections.delete(conn));
    conn.on("error", () => conn.destroy());
    let buffered: Buffer = Buffer.alloc(0);
    let pending = 0;
    const reply = (response: Buffer) => {
      if (conn.destroyed) return;
      const framed = Buffer.allocUnsafe(2 + response.length);
      framed.writeUInt16BE(response.length, 0);
      response.copy(framed, 2);
      conn.write(framed);
    };
    conn.on("data", (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        const message = Buffer.from(buffered.subarray(2, 2 + length));
        buffered = buffered.subarray(2 + length);
        this.metrics.query("tcp");
        if (++pending > MAX_TCP_PENDING) {
          this.drop("overload");
          conn.destroy();
          return;
        }
        this.onStreamMessage(message, reply).finally(() => pending--);
      }
      // A length prefix caps a message at 64 KiB, so `buffered` never grows past one message.
      if (buffered.length > MAX_TCP_MESSAGE + 2) conn.destroy();
    });
  }

  private async onStreamMessage(message: Buffer, reply: (response: Buffer) => void): Promise<void> {
    try {
      const decision = handleQuery(message, this.options.zone, "tcp");
      if (decision.kind === "local") return reply(this.localResponse(cachedAnswer(decision), message, false));
      // Over TCP a message too short to answer closes nothing; it just gets no answer.
      await this.other(decision, message, "tcp", reply);
    } catch (err) {
      this.failed(err);
    }
  }
}

function cachedAnswer(decision: Extract<Decision, { kind: "local" }>): CachedAnswer {
  return {
    rcode: decision.rcode,
    records: decision.records,
    ...(decision.rotation ? { rotation: decision.rotation } : {}),
    build: decision.encode,
    encodings: [],
  };
}
