import { Counter, Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { InvalidInputError } from "./errors.ts";
import { createLogger } from "./log.ts";
import { ProbeServer, parseListenAddress } from "./serve.ts";

describe("parseListenAddress", () => {
  it.each([
    { value: ":8080", want: { host: "0.0.0.0", port: 8080 } },
    { value: "127.0.0.1:9090", want: { host: "127.0.0.1", port: 9090 } },
    { value: "[::1]:8081", want: { host: "::1", port: 8081 } },
    { value: "localhost:0", want: { host: "localhost", port: 0 } },
  ])("$value", ({ value, want }) => {
    expect(parseListenAddress(value)).toEqual(want);
  });

  it.each(["8080", "host:", ":99999", "a:b", "::1:80"])("rejects %j", (value) => {
    expect(() => parseListenAddress(value)).toThrow(InvalidInputError);
  });
});

describe("ProbeServer", () => {
  let server: ProbeServer | undefined;
  afterEach(async () => server?.stop());

  async function start(registry?: Registry) {
    server = new ProbeServer({ registry, logger: createLogger("probe-test", "silent") });
    const { port } = await server.start();
    const get = async (path: string, method = "GET") => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
      return { status: res.status, body: await res.text(), type: res.headers.get("content-type") };
    };
    return { server, get };
  }

  it("binds to loopback by default", async () => {
    const { server: s } = await start();
    expect(s.address().host).toBe("127.0.0.1");
  });

  it("serves the registry on /metrics", async () => {
    const registry = new Registry();
    new Counter({ name: "skein_test_total", help: "a test counter", registers: [registry] }).inc(3);
    const { get } = await start(registry);
    const res = await get("/metrics");
    expect(res.status).toBe(200);
    expect(res.type).toContain("text/plain");
    expect(res.body).toContain("skein_test_total 3");
  });

  it("is ready only once every readiness check passes", async () => {
    let synced = false;
    const { server: s, get } = await start();
    s.addReadinessCheck("informers-synced", () => synced);
    s.addReadinessCheck("always", () => true);
    const before = await get("/readyz");
    expect(before.status).toBe(503);
    expect(before.body).toBe("[-]informers-synced failed: not yet\n[+]always ok\ncheck failed\n");
    synced = true;
    const after = await get("/readyz");
    expect(after.status).toBe(200);
    expect(after.body).toBe("[+]informers-synced ok\n[+]always ok\nok\n");
  });

  it("reports a throwing or rejecting check as failed with its reason", async () => {
    const { server: s, get } = await start();
    s.addReadinessCheck("api", async () => {
      throw new Error("connect ECONNREFUSED");
    });
    const res = await get("/readyz");
    expect(res.status).toBe(503);
    expect(res.body).toContain("[-]api failed: connect ECONNREFUSED");
  });

  it("answers /healthz while alive, and reflects liveness checks", async () => {
    const { server: s, get } = await start();
    expect(await get("/healthz")).toMatchObject({ status: 200, body: "ok\n" });
    s.addLivenessCheck("event-loop", () => false);
    expect((await get("/healthz")).status).toBe(503);
  });

  it("rejects unknown paths and methods", async () => {
    const { get } = await start();
    expect((await get("/nope")).status).toBe(404);
    expect((await get("/metrics")).status).toBe(404);
    expect((await get("/healthz", "POST")).status).toBe(405);
  });

  it("stops listening on stop", async () => {
    const { server: s } = await start();
    const { port } = s.address();
    await s.stop();
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });
});
