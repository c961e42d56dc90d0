import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../kit/errors.ts";
import { dnsArgv, parseDnsFlags, parseListen } from "./flags.ts";

describe("parseDnsFlags", () => {
  it("has defaults that answer on port 53 with the Network's settings", () => {
    expect(parseDnsFlags([], {})).toEqual({
      network: "skein",
      listen: [{ address: "0.0.0.0", port: 53 }],
      allow: [],
      allowAnyClient: false,
      resolvConf: "/etc/resolv.conf",
      probes: true,
      upstreamTimeoutMs: 2000,
      workers: 1,
    });
  });

  it("takes every flag", () => {
    const config = parseDnsFlags(
      [
        "--node=node-1",
        "--kubeconfig=/k",
        "--listen=10.244.1.1",
        "--listen=[fd00::1]:5353",
        "--domain=Cluster.Test.",
        "--ttl=0",
        "--upstream=127.0.0.1:5300",
        "--cidr=10.244.0.0/16",
        "--allow=192.0.2.0/24",
        "--no-probes",
        "--upstream-timeout-ms=500",
        "--metrics-address=127.0.0.1:9403",
      ],
      {},
    );
    expect(config).toMatchObject({
      node: "node-1",
      kubeconfig: "/k",
      listen: [
        { address: "10.244.1.1", port: 53 },
        { address: "fd00::1", port: 5353 },
      ],
      domain: "cluster.test",
      ttlSeconds: 0,
      upstreams: [{ address: "127.0.0.1", port: 5300 }],
      cidr: "10.244.0.0/16",
      allow: ["192.0.2.0/24"],
      probes: false,
      upstreamTimeoutMs: 500,
      metricsAddress: { host: "127.0.0.1", port: 9403 },
    });
  });

  it("takes the node from NODE_NAME and answers --help", () => {
    expect(parseDnsFlags([], { NODE_NAME: "n2" })).toMatchObject({ node: "n2" });
    expect(parseDnsFlags(["--help"], {})).toBe("help");
  });

  it.each([
    [["--listen=dns.local"], /--listen "dns.local" is not an IP address/],
    [["--domain=bad_domain"], /--domain "bad_domain"/],
    [["--ttl=-1"], /--ttl must be a whole number from 0 to 3600/],
    [["--ttl=4000"], /--ttl/],
    [["--upstream=8.8.8.8:0"], /--upstream/],
    [["--cidr=10.244.0.0"], /--cidr "10.244.0.0" is not a network in CIDR notation/],
    [["--allow=10.0.0.0/33"], /--allow/],
    [["--bogus"], /see --help/],
    [["--metrics-address=127.0.0.1:0"], /needs a port/],
  ])("rejects %j", (argv, message) => {
    expect(() => parseDnsFlags(argv, {})).toThrow(InvalidInputError);
    expect(() => parseDnsFlags(argv, {})).toThrow(message);
  });

  it("listens on port 0 when asked (tests)", () => {
    expect(parseListen("127.0.0.1:0")).toEqual({ address: "127.0.0.1", port: 0 });
  });
});

describe("dnsArgv", () => {
  it.each([
    ["the defaults", []],
    [
      "every setting a worker takes",
      [
        "--node=node-1",
        "--kubeconfig=/k",
        "--network=blue",
        "--listen=10.244.1.1",
        "--listen=[fd00::1]:5353",
        "--listen=127.0.0.1:0",
        "--domain=cluster.test",
        "--ttl=0",
        "--upstream=127.0.0.1:5300",
        "--upstream=[fd00::53]:53",
        "--cidr=10.244.0.0/16",
        "--allow=192.0.2.0/24",
        "--allow=198.51.100.0/24",
        "--allow-any-client",
        "--resolv-conf=/etc/other.conf",
        "--no-probes",
        "--upstream-timeout-ms=500",
      ],
    ],
  ])("gives a worker flags that parse back to the same config: %s", (_what, argv) => {
    const config = parseDnsFlags(argv, {});
    if (config === "help") throw new Error("unexpected --help");
    const { metricsAddress: _m, workers: _w, ...workerConfig } = config;
    expect(parseDnsFlags(dnsArgv(workerConfig), {})).toEqual({ ...workerConfig, workers: 1 });
  });
});
