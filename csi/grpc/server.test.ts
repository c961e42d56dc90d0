import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InvalidInputError } from "../../kit/errors.ts";
import { createLogger } from "../../kit/log.ts";
import { ZfsError } from "../zfs/errors.ts";
import { CsiClient } from "./load.ts";
import { CsiServer, socketPathOf } from "./server.ts";
import { CsiError } from "./status.ts";

const logger = createLogger("csi-grpc-test", "silent");
let dir: string;
const servers: CsiServer[] = [];
const clients: CsiClient<"Identity" | "Node">[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "skein-grpc-"));
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) await s.stop(1_000);
  rmSync(dir, { recursive: true, force: true });
});

async function serve(socket: string, services: Parameters<typeof CsiServer.start>[0]["services"]) {
  const server = await CsiServer.start({ endpoint: socket, services, logger });
  servers.push(server);
  return server;
}

function client<S extends "Identity" | "Node">(service: S, socket: string): CsiClient<S> {
  const c = new CsiClient(service, `unix://${socket}`);
  clients.push(c);
  return c;
}

async function codeOf(promise: Promise<unknown>): Promise<number | undefined> {
  return promise.then(
    () => undefined,
    (err: { code?: number }) => err.code,
  );
}

const info = { GetPluginInfo: async () => ({ name: "x.example", vendor_version: "1" }) };

describe("endpoints", () => {
  it.each([
    ["unix:///run/csi/csi.sock", "/run/csi/csi.sock"],
    ["/run/csi/csi.sock", "/run/csi/csi.sock"],
  ])("reads %s", (endpoint, path) => {
    expect(socketPathOf(endpoint)).toBe(path);
  });

  it.each(["tcp://127.0.0.1:10000", "127.0.0.1:10000", "unix://relative.sock"])("refuses %s", (endpoint) => {
    expect(() => socketPathOf(endpoint)).toThrow(InvalidInputError);
  });
});

describe("CsiServer", () => {
  it("serves a service on a unix socket, in a directory it creates", async () => {
    const socket = join(dir, "sub", "csi.sock");
    await serve(`unix://${socket}`, { Identity: info });
    expect(await client("Identity", socket).call("GetPluginInfo", {})).toEqual({
      name: "x.example",
      vendor_version: "1",
      manifest: {},
    });
  });

  it("answers UNIMPLEMENTED for a method the service leaves out", async () => {
    const socket = join(dir, "csi.sock");
    await serve(socket, { Identity: info, Node: {} });
    expect(await codeOf(client("Identity", socket).call("Probe", {}))).toBe(status.UNIMPLEMENTED);
    expect(await codeOf(client("Node", socket).call("NodeGetInfo", {}))).toBe(status.UNIMPLEMENTED);
  });

  it("answers UNIMPLEMENTED for a service it does not serve", async () => {
    const socket = join(dir, "csi.sock");
    await serve(socket, { Identity: info });
    expect(await codeOf(client("Node", socket).call("NodeGetInfo", {}))).toBe(status.UNIMPLEMENTED);
  });

  it.each([
    ["invalid input", new InvalidInputError("bad"), status.INVALID_ARGUMENT],
    ["a missing dataset", new ZfsError("ZfsNotFound", "gone"), status.NOT_FOUND],
    ["a concurrent call", new CsiError("ABORTED", "busy"), status.ABORTED],
    ["a bug", new TypeError("undefined is not a function"), status.INTERNAL],
  ])("turns %s into its status code and keeps the message", async (_name, error, code) => {
    const socket = join(dir, "csi.sock");
    await serve(socket, {
      Identity: {
        async GetPluginInfo() {
          throw error;
        },
      },
    });
    const err = (await client("Identity", socket)
      .call("GetPluginInfo", {})
      .catch((e: unknown) => e)) as { code: number; details: string };
    expect(err.code).toBe(code);
    expect(err.details).toBe(error.message);
  });

  it("replaces a stale socket left by a dead server", async () => {
    const socket = join(dir, "csi.sock");
    // A process that listens and is then killed leaves its socket file behind.
    const child = spawn(process.execPath, [
      "-e",
      `require("net").createServer().listen(${JSON.stringify(socket)}, () => console.log("up"))`,
    ]);
    await new Promise((resolve) => child.stdout.once("data", resolve));
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    expect(existsSync(socket)).toBe(true);

    await serve(socket, { Identity: info });
    expect((await client("Identity", socket).call("GetPluginInfo", {})).name).toBe("x.example");
  });

  it("refuses a socket another server is listening on, and a path that is not a socket", async () => {
    const socket = join(dir, "csi.sock");
    await serve(socket, { Identity: info });
    await expect(CsiServer.start({ endpoint: socket, services: {}, logger })).rejects.toThrow(
      /already listens/,
    );
    expect((await client("Identity", socket).call("GetPluginInfo", {})).name).toBe("x.example");

    const file = join(dir, "not-a-socket");
    writeFileSync(file, "keep me");
    await expect(CsiServer.start({ endpoint: file, services: {}, logger })).rejects.toThrow(/not a socket/);
    expect(existsSync(file)).toBe(true);
  });

  it("lets a running call finish on stop, then removes the socket", async () => {
    const socket = join(dir, "csi.sock");
    let release: () => void = () => {};
    const server = await CsiServer.start({
      endpoint: socket,
      logger,
      services: {
        Identity: {
          GetPluginInfo: () =>
            new Promise((resolve) => {
              release = () => resolve({ name: "slow.example" });
            }),
        },
      },
    });
    const c = client("Identity", socket);
    const call = c.call("GetPluginInfo", {});
    await new Promise((r) => setTimeout(r, 100));
    const stopped = server.stop(5_000);
    release();
    expect((await call).name).toBe("slow.example");
    await stopped;
    expect(existsSync(socket)).toBe(false);
  });

  it("cancels calls still running after the grace period", async () => {
    const socket = join(dir, "csi.sock");
    let signal: AbortSignal | undefined;
    const server = await CsiServer.start({
      endpoint: socket,
      logger,
      services: {
        Identity: {
          GetPluginInfo: (_req, context) => {
            signal = context.signal;
            return new Promise(() => {});
          },
        },
      },
    });
    const call = client("Identity", socket).call("GetPluginInfo", {});
    await new Promise((r) => setTimeout(r, 100));
    await server.stop(200);
    expect(await codeOf(call)).toBeDefined();
    expect(signal?.aborted).toBe(true);
  });
});
