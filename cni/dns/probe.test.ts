import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer } from "node:net";
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { probeSpecs, runProbe } from "./probe.ts";

const withAnnotations = (annotations: Record<string, string>): V1Pod => ({
  metadata: { name: "p", annotations },
});

describe("probeSpecs", () => {
  it.each<[Record<string, string>, unknown]>([
    [{}, { specs: [] }],
    [{ "skein.io/probe-tcp": "8080" }, { specs: [{ kind: "tcp", port: 8080 }] }],
    [{ "skein.io/probe-http": ":8080/healthz" }, { specs: [{ kind: "http", port: 8080, path: "/healthz" }] }],
    [{ "skein.io/probe-http": "8080" }, { specs: [{ kind: "http", port: 8080, path: "/" }] }],
    [
      { "skein.io/probe-tcp": "53", "skein.io/probe-http": "80/ready?full=1" },
      {
        specs: [
          { kind: "tcp", port: 53 },
          { kind: "http", port: 80, path: "/ready?full=1" },
        ],
      },
    ],
  ])("%j", (annotations, want) => {
    expect(probeSpecs(withAnnotations(annotations))).toEqual(want);
  });

  it.each([
    [{ "skein.io/probe-tcp": "http" }, /probe-tcp is "http": it must be a port number/],
    [{ "skein.io/probe-tcp": "0" }, /probe-tcp/],
    [{ "skein.io/probe-tcp": "70000" }, /probe-tcp/],
    [{ "skein.io/probe-http": "/healthz" }, /probe-http is "\/healthz": it must be \[:\]PORT\[\/PATH\]/],
    [{ "skein.io/probe-http": ":8080/a b" }, /probe-http/],
  ])("rejects %j with a message that says what to write", (annotations, message) => {
    const parsed = probeSpecs(withAnnotations(annotations));
    expect("error" in parsed && parsed.error).toMatch(message);
  });
});

describe("runProbe", () => {
  it("passes a TCP probe on a listening port and fails one on a closed port", async () => {
    const server = createServer((c) => c.end());
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as AddressInfo).port;
    try {
      expect(await runProbe("127.0.0.1", { kind: "tcp", port }, 500)).toMatchObject({ ok: true });
    } finally {
      await new Promise((r) => server.close(r));
    }
    const closed = await runProbe("127.0.0.1", { kind: "tcp", port }, 500);
    expect(closed.ok).toBe(false);
    expect(closed.message).toMatch(/ECONNREFUSED/);
  });

  it("judges HTTP by status: 2xx/3xx pass, others fail, silence times out", async () => {
    const server = createHttpServer((req, res) => {
      if (req.url === "/slow") return;
      res.writeHead(req.url === "/healthz" ? 200 : req.url === "/moved" ? 302 : 503).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as AddressInfo).port;
    try {
      expect(await runProbe("127.0.0.1", { kind: "http", port, path: "/healthz" }, 500)).toMatchObject({
        ok: true,
      });
      expect(await runProbe("127.0.0.1", { kind: "http", port, path: "/moved" }, 500)).toMatchObject({
        ok: true,
      });
      expect(await runProbe("127.0.0.1", { kind: "http", port, path: "/down" }, 500)).toMatchObject({
        ok: false,
        message: expect.stringMatching(/HTTP 503/),
      });
      const began = Date.now();
      expect(await runProbe("127.0.0.1", { kind: "http", port, path: "/slow" }, 200)).toMatchObject({
        ok: false,
        message: expect.stringMatching(/no answer within 200 ms/),
      });
      expect(Date.now() - began).toBeLessThan(1000);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
