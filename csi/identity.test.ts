import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { run } from "../kit/exec.ts";
import { createLogger } from "../kit/log.ts";
import pkg from "../package.json" with { type: "json" };
import { toolPath } from "../test/fixtures/tools.ts";
import { CsiClient } from "./grpc/load.ts";
import { CsiServer } from "./grpc/server.ts";
import { identityService, PLUGIN_NAME } from "./identity.ts";

const logger = createLogger("identity-test", "silent");
let dir: string;
let socket: string;
let server: CsiServer | undefined;
let client: CsiClient<"Identity"> | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "skein-identity-"));
  socket = join(dir, "csi.sock");
});

afterEach(async () => {
  client?.close();
  client = undefined;
  await server?.stop(1_000);
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function serve(ready: () => boolean | Promise<boolean>): Promise<CsiClient<"Identity">> {
  server = await CsiServer.start({
    endpoint: `unix://${socket}`,
    services: { Identity: identityService({ ready }) },
    logger,
  });
  client = new CsiClient("Identity", `unix://${socket}`);
  return client;
}

describe("Identity over a unix socket", () => {
  it("names the plugin and its version", async () => {
    const c = await serve(() => true);
    expect(await c.call("GetPluginInfo", {})).toEqual({
      name: PLUGIN_NAME,
      vendor_version: pkg.version,
      manifest: {},
    });
  });

  it("claims the controller service, topology and online expansion", async () => {
    const c = await serve(() => true);
    const { capabilities } = await c.call("GetPluginCapabilities", {});
    expect(capabilities).toEqual([
      { service: { type: "CONTROLLER_SERVICE" }, type: "service" },
      { service: { type: "VOLUME_ACCESSIBILITY_CONSTRAINTS" }, type: "service" },
      { volume_expansion: { type: "ONLINE" }, type: "volume_expansion" },
    ]);
  });

  it("is ready only when the readiness callback says so", async () => {
    let ready = false;
    const c = await serve(async () => ready);
    expect((await c.call("Probe", {})).ready).toEqual({ value: false });
    ready = true;
    expect((await c.call("Probe", {})).ready).toEqual({ value: true });
  });

  it("reports a broken plugin as FAILED_PRECONDITION", async () => {
    const c = await serve(() => {
      throw new Error("pool tank is not imported");
    });
    const err = (await c.call("Probe", {}).catch((e: unknown) => e)) as { code: number; details: string };
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain("pool tank is not imported");
  });
});

describe("csi-sanity", () => {
  it("passes the Identity tests", async () => {
    await serve(() => true);
    // csi-sanity creates (and removes) these itself; their parent must exist.
    mkdirSync(join(dir, "sanity"));
    const result = await run(
      [
        toolPath("csi-sanity"),
        `--csi.endpoint=unix://${socket}`,
        `--csi.mountdir=${join(dir, "sanity", "mount")}`,
        `--csi.stagingdir=${join(dir, "sanity", "staging")}`,
        "--ginkgo.focus=Identity",
        "--ginkgo.no-color",
      ],
      { timeoutMs: 120_000 },
    ).catch((err: unknown) => {
      throw new Error(`csi-sanity failed: ${String(err)}`);
    });
    expect(result.stdout).toMatch(/SUCCESS!/);
    expect(result.stdout).toMatch(/Ran [1-9]\d* of \d+ Specs/);
  });
});
