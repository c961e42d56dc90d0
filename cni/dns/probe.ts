/**
 * Active health probes a pod asks for in its annotations:
 *   skein.io/probe-tcp:  "8080"             a TCP connect to the pod's address
 *   skein.io/probe-http: ":8080/healthz"    an HTTP GET; 200–399 is healthy
 * ("8080/healthz" and "8080" for "/" are accepted too). With both, both must
 * pass. The spec parser is pure; `runProbe` does the one network call.
 */
import { request } from "node:http";
import { isIP, Socket } from "node:net";
import type { V1Pod } from "@kubernetes/client-node";
import { describeError } from "../../kit/errors.ts";
import { PROBE_HTTP_ANNOTATION, PROBE_TCP_ANNOTATION } from "./pod-records.ts";

export type ProbeSpec = { kind: "tcp"; port: number } | { kind: "http"; port: number; path: string };

export interface ProbeResult {
  ok: boolean;
  /** What happened, for the pod condition's message. */
  message: string;
}

const PORT = /^([1-9]\d{0,4})$/;
const HTTP = /^:?([1-9]\d{0,4})(\/[\x21-\x7e]*)?$/;

function port(text: string): number | undefined {
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/** The probes the pod asks for, or what is wrong with its annotations. */
export function probeSpecs(pod: V1Pod): { specs: ProbeSpec[] } | { error: string } {
  const annotations = pod.metadata?.annotations ?? {};
  const specs: ProbeSpec[] = [];
  const tcp = annotations[PROBE_TCP_ANNOTATION];
  if (tcp !== undefined) {
    const p = PORT.test(tcp.trim()) ? port(tcp.trim()) : undefined;
    if (p === undefined) {
      return {
        error: `${PROBE_TCP_ANNOTATION} is ${JSON.stringify(tcp)}: it must be a port number from 1 to 65535, e.g. "8080"`,
      };
    }
    specs.push({ kind: "tcp", port: p });
  }
  const http = annotations[PROBE_HTTP_ANNOTATION];
  if (http !== undefined) {
    const match = HTTP.exec(http.trim());
    const p = match ? port(match[1]!) : undefined;
    if (!match || p === undefined) {
      return {
        error: `${PROBE_HTTP_ANNOTATION} is ${JSON.stringify(http)}: it must be [:]PORT[/PATH] with a port from 1 to 65535, e.g. ":8080/healthz"`,
      };
    }
    specs.push({ kind: "http", port: p, path: match[2] ?? "/" });
  }
  return { specs };
}

export async function runProbe(address: string, spec: ProbeSpec, timeoutMs: number): Promise<ProbeResult> {
  const host = isIP(address) === 6 ? `[${address}]` : address;
  return spec.kind === "tcp"
    ? probeTcp(address, spec.port, timeoutMs, `tcp ${host}:${spec.port}`)
    : probeHttp(address, spec.port, spec.path, timeoutMs, `GET http://${host}:${spec.port}${spec.path}`);
}

function probeTcp(address: string, port: number, timeoutMs: number, what: string): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const finish = (result: ProbeResult) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(
      () => finish({ ok: false, message: `${what}: no connection within ${timeoutMs} ms` }),
      timeoutMs,
    );
    socket.once("error", (err) => finish({ ok: false, message: `${what}: ${describeError(err)}` }));
    socket.connect(port, address, () => finish({ ok: true, message: `${what}: connected` }));
  });
}

function probeHttp(
  address: string,
  port: number,
  path: string,
  timeoutMs: number,
  what: string,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(result);
    };
    const req = request(
      {
        host: address,
        port,
        path,
        method: "GET",
        agent: false,
        headers: { "user-agent": "skein-dns-probe" },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        finish({ ok: status >= 200 && status < 400, message: `${what}: HTTP ${status}` });
      },
    );
    const timer = setTimeout(
      () => finish({ ok: false, message: `${what}: no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
    req.once("error", (err) => finish({ ok: false, message: `${what}: ${describeError(err)}` }));
    req.end();
  });
}
