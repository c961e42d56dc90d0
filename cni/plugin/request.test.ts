import { describe, expect, it } from "vitest";
import { CniError } from "./errors.ts";
import { type Command, DEFAULT_DATA_DIR, parseArgs, parseEnvironment, parseNetConf } from "./request.ts";

const ADD_ENV = { CNI_COMMAND: "ADD", CNI_CONTAINERID: "c1", CNI_NETNS: "/run/netns/p", CNI_IFNAME: "eth0" };

function codeOf(fn: () => unknown): { code: number; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return { code: err.cniCode, message: err.message };
    throw err;
  }
  throw new Error("expected a CniError");
}

describe("parseEnvironment", () => {
  it("reads an ADD invocation", () => {
    expect(
      parseEnvironment({
        ...ADD_ENV,
        CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=web-0",
        CNI_PATH: "/opt/cni/bin",
      }),
    ).toEqual({
      command: "ADD",
      containerID: "c1",
      netns: "/run/netns/p",
      ifname: "eth0",
      args: { IgnoreUnknown: "1", K8S_POD_NAME: "web-0" },
      path: "/opt/cni/bin",
    });
  });

  it.each<[string, Record<string, string>]>([
    ["DEL without a namespace", { CNI_COMMAND: "DEL", CNI_CONTAINERID: "c1", CNI_IFNAME: "eth0" }],
    ["STATUS with nothing else", { CNI_COMMAND: "STATUS" }],
    ["VERSION with nothing else", { CNI_COMMAND: "VERSION" }],
    ["GC with CNI_PATH", { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" }],
  ])("accepts %s", (_what, env) => {
    expect(parseEnvironment(env).command).toBe(env.CNI_COMMAND);
  });

  it.each<[string, Record<string, string>, RegExp]>([
    ["no command", {}, /\[CNI_COMMAND\] missing/],
    ["an unknown command", { ...ADD_ENV, CNI_COMMAND: "ATTACH" }, /"ATTACH" is not one of/],
    [
      "ADD without namespace and ifname",
      { CNI_COMMAND: "ADD", CNI_CONTAINERID: "c1" },
      /\[CNI_NETNS,CNI_IFNAME\] missing/,
    ],
    ["an empty container ID", { ...ADD_ENV, CNI_CONTAINERID: "" }, /\[CNI_CONTAINERID\] missing/],
    [
      "CHECK without a container ID",
      { CNI_COMMAND: "CHECK", CNI_NETNS: "/x", CNI_IFNAME: "eth0" },
      /CNI_CONTAINERID/,
    ],
    ["GC without CNI_PATH", { CNI_COMMAND: "GC" }, /\[CNI_PATH\] missing/],
    [
      "a container ID with a slash",
      { ...ADD_ENV, CNI_CONTAINERID: "../etc" },
      /CNI_CONTAINERID has invalid characters/,
    ],
    ["a container ID starting with a dash", { ...ADD_ENV, CNI_CONTAINERID: "-x" }, /CNI_CONTAINERID/],
    ["a 16-byte ifname", { ...ADD_ENV, CNI_IFNAME: "eth0123456789abc" }, /CNI_IFNAME.*longer than 15/],
    ["an ifname with a space", { ...ADD_ENV, CNI_IFNAME: "eth 0" }, /CNI_IFNAME.*whitespace/],
    ["an ifname of ..", { ...ADD_ENV, CNI_IFNAME: ".." }, /CNI_IFNAME/],
    ["an ifname ip -batch would cut", { ...ADD_ENV, CNI_IFNAME: "eth#0" }, /CNI_IFNAME.*#/],
    ["a relative namespace path", { ...ADD_ENV, CNI_NETNS: "netns/p" }, /CNI_NETNS must be an absolute path/],
    ["malformed CNI_ARGS", { ...ADD_ENV, CNI_ARGS: "K8S_POD_NAME" }, /CNI_ARGS/],
  ])("refuses %s with code 4", (_what, env, message) => {
    const { code, message: text } = codeOf(() => parseEnvironment(env));
    expect(code).toBe(4);
    expect(text).toMatch(message);
  });

  it("parses CNI_ARGS, allowing '=' in values and empty pairs", () => {
    expect(parseArgs("A=1;;B=x=y")).toEqual({ A: "1", B: "x=y" });
  });
});

const CONF = { cniVersion: "1.1.0", name: "skein", type: "skein" };

describe("parseNetConf", () => {
  it("reads a minimal configuration with the default data directory", () => {
    expect(parseNetConf(JSON.stringify(CONF), "ADD")).toEqual({
      cniVersion: "1.1.0",
      name: "skein",
      dataDir: DEFAULT_DATA_DIR,
    });
  });

  it("reads the optional fields and ignores protocol keys", () => {
    const conf = parseNetConf(
      JSON.stringify({
        ...CONF,
        settingsFile: "/run/x.json",
        dataDir: "/tmp/ipam",
        dns: { nameservers: ["10.32.1.1"] },
        runtimeConfig: { portMappings: [] },
        args: { cni: {} },
        "cni.dev/future": 1,
        prevResult: { cniVersion: "1.1.0", interfaces: [{ name: "x" }], ips: [], routes: [] },
      }),
      "ADD",
    );
    expect(conf).toMatchObject({
      settingsFile: "/run/x.json",
      dataDir: "/tmp/ipam",
      dns: { nameservers: ["10.32.1.1"] },
      prevResult: { interfaces: [{ name: "x" }], ips: [], routes: [] },
    });
  });

  it.each(["0.4.0", "1.0.0", "1.1.0"])("accepts cniVersion %s for ADD", (cniVersion) => {
    expect(parseNetConf(JSON.stringify({ ...CONF, cniVersion }), "ADD").cniVersion).toBe(cniVersion);
  });

  it("reads the valid attachments of GC, under either key", () => {
    const valid = [{ containerID: "c1", ifname: "eth0" }];
    expect(
      parseNetConf(JSON.stringify({ ...CONF, "cni.dev/valid-attachments": valid }), "GC").validAttachments,
    ).toEqual(valid);
    expect(
      parseNetConf(JSON.stringify({ ...CONF, "cni.dev/attachments": valid }), "GC").validAttachments,
    ).toEqual(valid);
    expect(parseNetConf(JSON.stringify(CONF), "GC").validAttachments).toEqual([]);
  });

  it.each<[string, string, Command, number, RegExp]>([
    ["text that is not JSON", "{", "ADD", 6, /not JSON/],
    ["a JSON array", "[]", "ADD", 6, /not a JSON object/],
    ["a missing name", JSON.stringify({ ...CONF, name: undefined }), "ADD", 7, /network name/],
    ["a name with a slash", JSON.stringify({ ...CONF, name: "a/b" }), "DEL", 7, /network name/],
    [
      "a missing cniVersion",
      JSON.stringify({ ...CONF, cniVersion: undefined }),
      "ADD",
      1,
      /incompatible CNI version/,
    ],
    [
      "cniVersion 0.3.1",
      JSON.stringify({ ...CONF, cniVersion: "0.3.1" }),
      "ADD",
      1,
      /supports 0.4.0, 1.0.0, 1.1.0/,
    ],
    ["cniVersion 2.0.0", JSON.stringify({ ...CONF, cniVersion: "2.0.0" }), "DEL", 1, /incompatible/],
    ["GC at 1.0.0", JSON.stringify({ ...CONF, cniVersion: "1.0.0" }), "GC", 1, /does not allow GC/],
    [
      "STATUS at 0.4.0",
      JSON.stringify({ ...CONF, cniVersion: "0.4.0" }),
      "STATUS",
      1,
      /does not allow STATUS/,
    ],
    ["another type", JSON.stringify({ ...CONF, type: "bridge" }), "ADD", 7, /type must be "skein"/],
    [
      "an ipam section",
      JSON.stringify({ ...CONF, ipam: { type: "host-local" } }),
      "ADD",
      2,
      /ipam=\{"type":"host-local"\}/,
    ],
    ["ipMasq", JSON.stringify({ ...CONF, ipMasq: true }), "ADD", 2, /ipMasq=true/],
    ["a misspelt field", JSON.stringify({ ...CONF, settingsfile: "/x" }), "ADD", 2, /settingsfile="\/x"/],
    [
      "a relative dataDir",
      JSON.stringify({ ...CONF, dataDir: "ipam" }),
      "ADD",
      7,
      /dataDir must be an absolute path/,
    ],
    [
      "a settingsFile that is no string",
      JSON.stringify({ ...CONF, settingsFile: 3 }),
      "ADD",
      7,
      /settingsFile/,
    ],
    ["dns that is no object", JSON.stringify({ ...CONF, dns: "8.8.8.8" }), "ADD", 7, /dns must be an object/],
    [
      "a prevResult that is no object",
      JSON.stringify({ ...CONF, prevResult: 5 }),
      "CHECK",
      7,
      /invalid prevResult/,
    ],
    [
      "a prevResult IP without address",
      JSON.stringify({ ...CONF, prevResult: { ips: [{}] } }),
      "CHECK",
      7,
      /no address/,
    ],
    [
      "malformed valid attachments",
      JSON.stringify({ ...CONF, "cni.dev/valid-attachments": [{ containerID: "c1" }] }),
      "GC",
      7,
      /containerID and ifname/,
    ],
  ])("refuses %s", (_what, stdin, command, expected, message) => {
    const { code, message: text } = codeOf(() => parseNetConf(stdin, command));
    expect(code).toBe(expected);
    expect(text).toMatch(message);
  });
});
