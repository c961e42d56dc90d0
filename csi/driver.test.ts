import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../kit/errors.ts";
import { parseControllerFlags, parseNodeFlags } from "./driver.ts";
import { bindMountArgs, bindsOf, parseMountInfo, remountReadOnlyArgs, unmountArgs } from "./mount.ts";

describe("csi-controller flags", () => {
  it("has defaults", () => {
    expect(parseControllerFlags([])).toEqual({
      help: false,
      config: {
        endpoint: "unix:///run/csi/socket",
        kubeconfig: undefined,
        cluster: "skein",
        metricsAddress: undefined,
        waitTimeoutMs: 60_000,
      },
    });
  });

  it("reads every flag", () => {
    const parsed = parseControllerFlags([
      "--endpoint=/run/x.sock",
      "--kubeconfig",
      "/k",
      "--cluster=prod",
      "--metrics-address=:9808",
      "--wait-timeout=5",
    ]);
    expect(parsed).toEqual({
      help: false,
      config: {
        endpoint: "/run/x.sock",
        kubeconfig: "/k",
        cluster: "prod",
        metricsAddress: { host: "0.0.0.0", port: 9808 },
        waitTimeoutMs: 5000,
      },
    });
    expect(parseControllerFlags(["--help"])).toEqual({ help: true });
  });

  it.each([
    [["--endpoint=tcp://x:1"]],
    [["--cluster=no spaces"]],
    [["--wait-timeout=0"]],
    [["--unknown"]],
    [["positional"]],
  ])("refuses %j as a usage error", (argv) => {
    expect(() => parseControllerFlags(argv)).toThrow(InvalidInputError);
  });
});

describe("csi-node flags", () => {
  it("needs a pool and takes the node name from NODE_NAME", () => {
    expect(() => parseNodeFlags([], { NODE_NAME: "n1" })).toThrow(/--pool is required/);
    const parsed = parseNodeFlags(["--pool=tank", "--resync=2"], { NODE_NAME: "n1" });
    expect(parsed).toMatchObject({
      help: false,
      config: {
        nodeId: "n1",
        pool: "tank",
        resyncMs: 2000,
        replicaSyncMs: 30_000,
        stateDir: "/var/lib/skein/csi-node",
      },
    });
    expect(parseNodeFlags(["--pool=tank", "--state-dir=/srv/skein"], {})).toMatchObject({
      config: { stateDir: "/srv/skein" },
    });
    expect(() => parseNodeFlags(["--pool=tank", "--state-dir=state"], {})).toThrow(
      /--state-dir must be an absolute path/,
    );
    expect(parseNodeFlags(["--pool=tank", "--replica-sync=0.5"], {})).toMatchObject({
      config: { replicaSyncMs: 500 },
    });
    expect(() => parseNodeFlags(["--pool=tank", "--replica-sync=-1"], {})).toThrow(/--replica-sync/);
    expect(parseNodeFlags(["--pool=tank", "--node-id=n2"], { NODE_NAME: "n1" })).toMatchObject({
      config: { nodeId: "n2" },
    });
  });

  it.each([
    [["--pool=tank", "--node-id=Not_A_Node"]],
    [["--pool=-x", "--node-id=n1"]],
    [["--pool=mirror", "--node-id=n1"]],
  ])("refuses %j", (argv) => {
    expect(() => parseNodeFlags(argv, {})).toThrow(InvalidInputError);
  });
});

describe("mount commands", () => {
  it("builds bind, read-only remount and unmount argv with -- before paths", () => {
    expect(bindMountArgs("/pool/skein/v", "/t")).toEqual(["mount", "--bind", "--", "/pool/skein/v", "/t"]);
    expect(remountReadOnlyArgs("/t")).toEqual(["mount", "-o", "remount,bind,ro", "--", "/t"]);
    expect(unmountArgs("/t")).toEqual(["umount", "--", "/t"]);
  });

  it("reads the mount table, with escaped paths, read-only binds and stacked mounts in order", () => {
    const table = [
      "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
      "57 22 0:41 / /srv/tank rw,relatime - fuse.zfs tank rw,user_id=0",
      "58 57 0:42 / /srv/tank/skein rw,relatime - fuse.zfs tank/skein rw,user_id=0",
      "59 58 0:43 / /srv/tank/skein/vol-1 rw,relatime - fuse.zfs tank/skein/vol-1 rw,user_id=0",
      "70 22 0:43 / /var/lib/kubelet/pods/p1/vol\\040a ro,relatime shared:9 - fuse.zfs tank/skein/vol-1 rw,user_id=0",
      "71 22 0:43 / /var/lib/kubelet/pods/p2/vol rw,relatime - fuse.zfs tank/skein/vol-1 rw,user_id=0",
      "72 71 0:44 / /var/lib/kubelet/pods/p2/vol rw,relatime - zfs tank/skein/vol-2 rw",
      "not a mountinfo line",
    ].join("\n");
    const mounts = parseMountInfo(table);
    expect(mounts).toHaveLength(7);
    expect(mounts[4]).toEqual({
      id: 70,
      parent: 22,
      target: "/var/lib/kubelet/pods/p1/vol a",
      fstype: "fuse.zfs",
      source: "tank/skein/vol-1",
      readOnly: true,
    });
    // Its own mount (on its parent dataset's) is not a publication; the binds into pods are.
    expect(bindsOf(mounts, "tank/skein/vol-1")).toEqual([
      "/var/lib/kubelet/pods/p1/vol a",
      "/var/lib/kubelet/pods/p2/vol",
    ]);
    expect(bindsOf(mounts, "tank/skein/vol-3")).toEqual([]);
    // Without its parent's mount, the dataset's own mount counts too: wait rather than pull it from a pod.
    expect(
      bindsOf(
        mounts.filter((m) => m.id !== 58),
        "tank/skein/vol-1",
      ),
    ).toHaveLength(3);
  });
});

describe("csi-node transfer flags", () => {
  const base = ["--node-id=n1", "--pool=tank"];
  const config = (argv: string[]) => {
    const parsed = parseNodeFlags([...base, ...argv], {});
    if (parsed.help) throw new Error("help");
    return parsed.config.transfer;
  };

  it("is off without a certificate source", () => {
    expect(config([])).toBeUndefined();
  });

  it("reads the certificate from the operator's Secret, listening on the default port", () => {
    expect(config(["--transfer-secret-namespace=skein-system"])).toEqual({
      listen: { host: "0.0.0.0", port: 7480 },
      peerPort: 7480,
      credentials: { namespace: "skein-system" },
    });
  });

  it("takes a listen address, a peer port and a certificate directory", () => {
    expect(
      config(["--transfer-cert-dir=/etc/skein", "--transfer-address=10.0.0.1:9000", "--transfer-port=9001"]),
    ).toEqual({
      listen: { host: "10.0.0.1", port: 9000 },
      peerPort: 9001,
      credentials: { dir: "/etc/skein" },
    });
  });

  it.each([
    [["--transfer-secret-namespace=a", "--transfer-cert-dir=/x"], /not both/],
    [["--transfer-address=:7480"], /need a certificate/],
    [["--transfer-secret-namespace=Bad_NS"], /not a namespace name/],
    [["--transfer-cert-dir=/x", "--transfer-port=0"], /TCP port/],
    [["--transfer-cert-dir=/x", "--transfer-address=:0"], /--transfer-port is needed/],
  ])("refuses %j", (argv, message) => {
    expect(() => parseNodeFlags([...base, ...argv], {})).toThrow(message);
    expect(() => parseNodeFlags([...base, ...argv], {})).toThrow(InvalidInputError);
  });
});
