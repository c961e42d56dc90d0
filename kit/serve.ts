/**
 * The one small HTTP server every long-running component exposes:
 *
 * - `/metrics`: the Prometheus registry;
 * - `/healthz`: the process is alive and its event loop answers (plus any
 *   liveness checks; a failing one makes the kubelet restart the pod);
 * - `/readyz`: ready only when every readiness check passes (caches synced,
 *   say), so no traffic or leadership is trusted to a cold process.
 *
 * Check results use the API server's own format ("[+]name ok" /
 * "[-]name failed: reason"), so the same eyes and tools read both.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { describeError, InvalidInputError } from "./errors.ts";
import { splitHostPort } from "./host-port.ts";
import { createLogger, type Logger } from "./log.ts";

/** Passes by returning true (or nothing); fails by returning false or throwing, with the error as the reason. */
export type Check = () => boolean | undefined | Promise<boolean | undefined>;

export interface ProbeServerOptions {
  /** Interface to bind; default 127.0.0.1. Pods pass 0.0.0.0 so the kubelet can reach it. */
  host?: string;
  /** Port to bind; default 0 (any free port, see `address()`). */
  port?: number;
  /** A registry, or anything that renders one (a cluster's AggregatorRegistry). */
  registry?: Pick<Registry, "metrics" | "contentType">;
  logger?: Logger;
}

/** Parses a `--metrics-address` style value: "host:port", ":port" (all interfaces) or "[v6]:port". */
export function parseListenAddress(value: string): { host: string; port: number } {
  const parts = splitHostPort(value.trim());
  if (parts?.port === undefined) {
    throw new InvalidInputError(
      `listen address ${JSON.stringify(value)} is not host:port; use e.g. ":8080", "0.0.0.0:8080" or "127.0.0.1:8080"`,
    );
  }
  return { host: parts.host === "" ? "0.0.0.0" : parts.host, port: parts.port };
}

export class ProbeServer {
  private readonly readiness = new Map<string, Check>();
  private readonly liveness = new Map<string, Check>();
  private readonly server: Server;
  private readonly log: Logger;

  constructor(private readonly options: ProbeServerOptions = {}) {
    this.log = options.logger ?? createLogger("probe-server");
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.log.error({ err: describeError(err), path: req.url }, "probe request failed");
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
        res.end("internal error\n");
      });
    });
  }

  addReadinessCheck(name: string, check: Check): this {
    this.readiness.set(name, check);
    return this;
  }

  addLivenessCheck(name: string, check: Check): this {
    this.liveness.set(name, check);
    return this;
  }

  async start(): Promise<{ host: string; port: number }> {
    const host = this.options.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.options.port ?? 0, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    const addr = this.address();
    this.log.info(addr, "serving /metrics, /healthz and /readyz");
    return addr;
  }

  address(): { host: string; port: number } {
    const addr = this.server.address() as AddressInfo | null;
    if (!addr) throw new Error("the probe server is not listening");
    return { host: addr.address, port: addr.port };
  }

  async stop(): Promise<void> {
    if (!this.server.listening) return;
    await new Promise<void>((resolve, reject) => {
      this.server.close((err) => (err ? reject(err) : resolve()));
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://probe").pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" });
      res.end("method not allowed\n");
      return;
    }
    switch (path) {
      case "/metrics": {
        if (!this.options.registry) return text(res, 404, "no metrics registry\n");
        const body = await this.options.registry.metrics();
        res.writeHead(200, { "content-type": this.options.registry.contentType });
        res.end(body);
        return;
      }
      case "/healthz":
      case "/livez":
        return this.report(res, this.liveness);
      case "/readyz":
        return this.report(res, this.readiness);
      default:
        return text(res, 404, "not found\n");
    }
  }

  private async report(res: ServerResponse, checks: Map<string, Check>): Promise<void> {
    const lines: string[] = [];
    let ok = true;
    for (const [name, check] of checks) {
      let failure: string | undefined;
      try {
        if ((await check()) === false) failure = "not yet";
      } catch (err) {
        failure = describeError(err);
      }
      if (failure !== undefined) ok = false;
      lines.push(failure === undefined ? `[+]${name} ok` : `[-]${name} failed: ${failure}`);
    }
    lines.push(ok ? "ok" : "check failed");
    text(res, ok ? 200 : 503, `${lines.join("\n")}\n`);
  }
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
  res.end(body);
}
