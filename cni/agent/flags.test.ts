import { describe, expect, it } from "vitest";
import { parseAgentFlags } from "./flags.ts";

const defaults = {
  pluginSource: "/usr/lib/skein/skein-cni",
  dnsProgram: ["/usr/lib/skein/skein-dns"] as [string],
  cores: 2,
};

describe("net-agent flags", () => {
  it("fills defaults around the node name", () => {
    expect(parseAgentFlags(["--node", "n1"], {}, defaults)).toEqual({
      node: "n1",
      network: "skein",
      cniBinDir: "/opt/cni/bin",
      cniConfDir: "/etc/cni/net.d",
      settingsFile: "/run/skein/network.json",
      pluginSource: "/usr/lib/skein/skein-cni",
      portmap: true,
      metricsAddress: { host: "0.0.0.0", port: 9402 },
      resyncSeconds: 30,
      dns: { enabled: true, extraListen: [], workers: 2, program: ["/usr/lib/skein/skein-dns"] },
    });
  });

  it("runs the DNS program asked for, given as an absolute path", () => {
    expect(parseAgentFlags(["--node=n1", "--dns-program=/opt/dns"], {}, defaults)).toMatchObject({
      dns: { program: ["/opt/dns"] },
    });
    expect(() => parseAgentFlags(["--node=n1", "--dns-program=skein-dns"], {}, defaults)).toThrow(
      /--dns-program must be an absolute path/,
    );
  });

  it.each<[string, string[], number | undefined, number]>([
    ["one worker per core", [], 2, 2],
    ["at most two workers by default", [], 16, 2],
    ["no workers beside the agent on one core", [], 1, 1],
    ["the workers asked for", ["--dns-workers=8"], 2, 8],
    ["one process when asked for one", ["--dns-workers", "1"], 16, 1],
  ])("answers DNS from %s", (_what, argv, cores, workers) => {
    expect(parseAgentFlags(["--node=n1", ...argv], {}, { ...defaults, cores })).toMatchObject({
      dns: { workers },
    });
  });

  it("turns DNS off, or adds listen addresses", () => {
    expect(parseAgentFlags(["--node", "n1", "--no-dns"], {}, defaults)).toMatchObject({
      dns: { enabled: false },
    });
    expect(parseAgentFlags(["--node", "n1", "--dns-listen", "127.0.0.1:5353"], {}, defaults)).toMatchObject({
      dns: { enabled: true, extraListen: [{ address: "127.0.0.1", port: 5353 }] },
    });
    expect(() => parseAgentFlags(["--node", "n1", "--dns-listen", "nope"], {}, defaults)).toThrow(
      /not an IP address/,
    );
  });

  it("takes every flag", () => {
    const config = parseAgentFlags(
      [
        "--node=n2",
        "--kubeconfig=/k",
        "--network=blue",
        "--underlay-interface=eth1",
        "--cni-bin-dir=/b",
        "--cni-conf-dir=/c",
        "--settings-file=/s.json",
        "--plugin-data-dir=/d",
        "--plugin-source=/p",
        "--no-portmap",
        "--metrics-address=127.0.0.1:9000",
        "--resync-seconds=5",
      ],
      {},
      defaults,
    );
    expect(config).toMatchObject({
      node: "n2",
      kubeconfig: "/k",
      network: "blue",
      underlayInterface: "eth1",
      cniBinDir: "/b",
      pluginDataDir: "/d",
      pluginSource: "/p",
      portmap: false,
      metricsAddress: { host: "127.0.0.1", port: 9000 },
      resyncSeconds: 5,
    });
  });

  it("reads the node name from NODE_NAME", () => {
    expect(parseAgentFlags([], { NODE_NAME: "from-env" }, defaults)).toMatchObject({ node: "from-env" });
  });

  it("answers --help", () => {
    expect(parseAgentFlags(["--help"], {}, defaults)).toBe("help");
  });

  it.each<[string, string[], RegExp]>([
    ["no node", [], /--node is required/],
    ["an unknown flag", ["--node=n", "--bogus"], /Unknown option '--bogus'.*--help/],
    ["a relative CNI dir", ["--node=n", "--cni-bin-dir=bin"], /--cni-bin-dir must be an absolute path/],
    ["a bad resync period", ["--node=n", "--resync-seconds=0"], /--resync-seconds/],
    ["a bad interface name", ["--node=n", "--underlay-interface=a/b"], /--underlay-interface/],
    ["a metrics address without port", ["--node=n", "--metrics-address=localhost"], /not host:port/],
    [
      "no DNS workers",
      ["--node=n", "--dns-workers=0"],
      /--dns-workers must be a whole number from 1 to 64, got 0/,
    ],
    ["too many DNS workers", ["--node=n", "--dns-workers=65"], /--dns-workers/],
    ["a fraction of a DNS worker", ["--node=n", "--dns-workers=1.5"], /--dns-workers/],
    ["DNS workers in words", ["--node=n", "--dns-workers=two"], /--dns-workers/],
    ["DNS workers in hex", ["--node=n", "--dns-workers=0x2"], /--dns-workers/],
  ])("refuses %s", (_what, argv, error) => {
    expect(() => parseAgentFlags(argv, {}, defaults)).toThrow(error);
  });
});
