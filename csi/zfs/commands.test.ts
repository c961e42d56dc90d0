import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../kit/errors.ts";
import type { Argv } from "../../kit/exec.ts";
import type { ZfsCapabilities } from "./capabilities.ts";
import {
  abortReceiveArgs,
  cloneArgs,
  createArgs,
  destroyArgs,
  getArgs,
  holdArgs,
  holdsArgs,
  inheritArgs,
  listArgs,
  mountArgs,
  receiveArgs,
  releaseArgs,
  renameArgs,
  resumeSendArgs,
  rollbackArgs,
  sendArgs,
  setArgs,
  snapshotArgs,
  streamOptions,
  unmountArgs,
  zpoolListArgs,
} from "./commands.ts";
import { ZfsError } from "./errors.ts";

const ZFS_FUSE: ZfsCapabilities = {
  version: undefined,
  resumable: false,
  receiveNoMount: false,
  rawSend: false,
  compressedSend: false,
  largeBlocks: false,
  bookmarks: false,
  zvols: false,
  jsonOutput: false,
  parsableZpoolList: false,
  listHolds: false,
};
const OPENZFS: ZfsCapabilities = {
  version: "zfs-2.2.2-1",
  resumable: true,
  receiveNoMount: true,
  rawSend: true,
  compressedSend: true,
  largeBlocks: true,
  bookmarks: true,
  zvols: true,
  jsonOutput: false,
  parsableZpoolList: true,
  listHolds: true,
};

const V = "tank/skein/v1";
const S = "tank/skein/v1@s2";
const S1 = "tank/skein/v1@s1";

describe("argument builders", () => {
  const table: Array<[string, () => Argv, string[]]> = [
    ["create", () => createArgs(V), ["zfs", "create", V]],
    ["create -p", () => createArgs(V, { parents: true }), ["zfs", "create", "-p", V]],
    [
      "create with refquota and properties, in order",
      () =>
        createArgs(V, {
          refquota: 1048576,
          properties: { compression: "lz4", recordsize: "16384", "skein.io:volume": "v1" },
        }),
      [
        "zfs",
        "create",
        "-o",
        "refquota=1048576",
        "-o",
        "compression=lz4",
        "-o",
        "recordsize=16384",
        "-o",
        "skein.io:volume=v1",
        V,
      ],
    ],
    ["create refquota 0", () => createArgs(V, { refquota: 0 }), ["zfs", "create", "-o", "refquota=0", V]],
    ["destroy", () => destroyArgs(V), ["zfs", "destroy", V]],
    ["destroy -r", () => destroyArgs(V, { recursive: true }), ["zfs", "destroy", "-r", V]],
    ["destroy -f", () => destroyArgs(V, { force: true }), ["zfs", "destroy", "-f", V]],
    ["destroy snapshot -d", () => destroyArgs(S, { deferred: true }), ["zfs", "destroy", "-d", S]],
    [
      "destroy -r -d -f",
      () => destroyArgs(S, { recursive: true, deferred: true, force: true }),
      ["zfs", "destroy", "-r", "-d", "-f", S],
    ],
    ["snapshot", () => snapshotArgs(S), ["zfs", "snapshot", S]],
    ["snapshot -r", () => snapshotArgs(S, { recursive: true }), ["zfs", "snapshot", "-r", S]],
    [
      "snapshot -o",
      () => snapshotArgs(S, { properties: { "skein.io:snapshot": "s2" } }),
      ["zfs", "snapshot", "-o", "skein.io:snapshot=s2", S],
    ],
    ["clone", () => cloneArgs(S, "tank/skein/v2"), ["zfs", "clone", S, "tank/skein/v2"]],
    [
      "clone -p with refquota and properties",
      () => cloneArgs(S, "tank/skein/v2", { parents: true, refquota: 4096, properties: { atime: "off" } }),
      ["zfs", "clone", "-p", "-o", "refquota=4096", "-o", "atime=off", S, "tank/skein/v2"],
    ],
    ["mount", () => mountArgs(V), ["zfs", "mount", V]],
    ["unmount -f", () => unmountArgs(V, { force: true }), ["zfs", "unmount", "-f", V]],
    ["rollback", () => rollbackArgs(S), ["zfs", "rollback", S]],
    ["rollback -r", () => rollbackArgs(S, { destroyNewer: true }), ["zfs", "rollback", "-r", S]],
    ["set", () => setArgs(V, "refquota", "2097152"), ["zfs", "set", "refquota=2097152", V]],
    [
      "set user property",
      () => setArgs(V, "skein.io:owner", "node-a"),
      ["zfs", "set", "skein.io:owner=node-a", V],
    ],
    ["set on a snapshot", () => setArgs(S, "skein.io:x", "1"), ["zfs", "set", "skein.io:x=1", S]],
    ["inherit", () => inheritArgs(V, "compression"), ["zfs", "inherit", "compression", V]],
    [
      "inherit -r user property",
      () => inheritArgs(V, "skein.io:owner", { recursive: true }),
      ["zfs", "inherit", "-r", "skein.io:owner", V],
    ],
    [
      "get",
      () => getArgs([V], ["used", "available"]),
      ["zfs", "get", "-H", "-p", "-o", "name,property,value,source", "used,available", V],
    ],
    [
      "get -r all, several names",
      () => getArgs([V, S], ["all"], { recursive: true }),
      ["zfs", "get", "-H", "-p", "-o", "name,property,value,source", "-r", "all", V, S],
    ],
    [
      "get -d (depth wins over recursive)",
      () => getArgs(["tank/skein"], ["skein.io:volume"], { depth: 1, recursive: true }),
      [
        "zfs",
        "get",
        "-H",
        "-p",
        "-o",
        "name,property,value,source",
        "-d",
        "1",
        "skein.io:volume",
        "tank/skein",
      ],
    ],
    ["list", () => listArgs([]), ["zfs", "list", "-H", "-o", "name"]],
    [
      "list -t -r with columns",
      () =>
        listArgs([V], { columns: ["name", "origin"], types: ["filesystem", "snapshot"], recursive: true }),
      ["zfs", "list", "-H", "-o", "name,origin", "-t", "filesystem,snapshot", "-r", V],
    ],
    [
      "list -d",
      () => listArgs(["tank/skein"], { depth: 1, types: ["snapshot"] }),
      ["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-d", "1", "tank/skein"],
    ],
    ["send full", () => sendArgs(S, {}, ZFS_FUSE), ["zfs", "send", S]],
    ["send -i", () => sendArgs(S, { from: S1 }, ZFS_FUSE), ["zfs", "send", "-i", S1, S]],
    ["send -I", () => sendArgs(S, { from: S1, intermediates: true }, ZFS_FUSE), ["zfs", "send", "-I", S1, S]],
    ["send -p", () => sendArgs(S, { properties: true }, ZFS_FUSE), ["zfs", "send", "-p", S]],
    ["send -R", () => sendArgs(S, { replicate: true }, ZFS_FUSE), ["zfs", "send", "-R", S]],
    ["send -w", () => sendArgs(S, { raw: true }, OPENZFS), ["zfs", "send", "-w", S]],
    ["send -c", () => sendArgs(S, { compressed: true }, OPENZFS), ["zfs", "send", "-c", S]],
    ["send -L", () => sendArgs(S, { largeBlocks: true }, OPENZFS), ["zfs", "send", "-L", S]],
    [
      "send with every flag",
      () =>
        sendArgs(
          S,
          {
            from: S1,
            intermediates: true,
            properties: true,
            replicate: true,
            raw: true,
            compressed: true,
            largeBlocks: true,
          },
          OPENZFS,
        ),
      ["zfs", "send", "-R", "-p", "-w", "-c", "-L", "-I", S1, S],
    ],
    [
      "send with the best stream options of OpenZFS",
      () => sendArgs(S, streamOptions(OPENZFS), OPENZFS),
      ["zfs", "send", "-c", "-L", S],
    ],
    [
      "send with the best stream options of zfs-fuse",
      () => sendArgs(S, streamOptions(ZFS_FUSE), ZFS_FUSE),
      ["zfs", "send", S],
    ],
    [
      "send -t",
      () => resumeSendArgs("1-e604ea4bf-e0-789c63", OPENZFS),
      ["zfs", "send", "-t", "1-e604ea4bf-e0-789c63"],
    ],
    ["receive", () => receiveArgs(V, {}, ZFS_FUSE), ["zfs", "receive", V]],
    ["receive -F", () => receiveArgs(V, { force: true }, ZFS_FUSE), ["zfs", "receive", "-F", V]],
    ["receive -s", () => receiveArgs(V, { resumable: true }, OPENZFS), ["zfs", "receive", "-s", V]],
    ["receive -u", () => receiveArgs(V, { noMount: true }, OPENZFS), ["zfs", "receive", "-u", V]],
    [
      "receive -F -s -u",
      () => receiveArgs(V, { force: true, resumable: true, noMount: true }, OPENZFS),
      ["zfs", "receive", "-F", "-s", "-u", V],
    ],
    ["receive -A", () => abortReceiveArgs(V, OPENZFS), ["zfs", "receive", "-A", V]],
    ["hold", () => holdArgs("skein.io:keep", [S1, S]), ["zfs", "hold", "skein.io:keep", S1, S]],
    ["hold -r", () => holdArgs("keep", [S], { recursive: true }), ["zfs", "hold", "-r", "keep", S]],
    ["release", () => releaseArgs("keep", [S]), ["zfs", "release", "keep", S]],
    ["release -r", () => releaseArgs("keep", [S], { recursive: true }), ["zfs", "release", "-r", "keep", S]],
    ["holds", () => holdsArgs([S1, S], OPENZFS), ["zfs", "holds", "-H", S1, S]],
    ["rename dataset", () => renameArgs(V, "tank/skein/v9"), ["zfs", "rename", V, "tank/skein/v9"]],
    [
      "rename -p",
      () => renameArgs(V, "tank/other/v9", { parents: true }),
      ["zfs", "rename", "-p", V, "tank/other/v9"],
    ],
    ["rename snapshot", () => renameArgs(S1, "tank/skein/v1@s0"), ["zfs", "rename", S1, "tank/skein/v1@s0"]],
    [
      "zpool list, zfs-fuse",
      () => zpoolListArgs(["tank"], ZFS_FUSE),
      ["zpool", "list", "-H", "-o", "name,size,allocated,free,health", "tank"],
    ],
    [
      "zpool list -p, OpenZFS",
      () => zpoolListArgs(["tank", "tank2"], OPENZFS),
      ["zpool", "list", "-H", "-p", "-o", "name,size,allocated,free,health", "tank", "tank2"],
    ],
  ];

  it.each(table)("%s", (_name, build, expected) => {
    expect(build()).toEqual(expected);
  });
});

describe("argument builders refuse", () => {
  const invalid: Array<[string, () => Argv, RegExp]> = [
    ["a dataset name that looks like a flag", () => createArgs("tank/-R"), /starts with '-'/],
    ["a fractional refquota", () => createArgs(V, { refquota: 1.5 }), /whole number of bytes/],
    ["a negative refquota", () => createArgs(V, { refquota: -1 }), /whole number of bytes/],
    [
      "a property name with '='",
      () => createArgs(V, { properties: { "a=b": "c" } }),
      /invalid ZFS property name/,
    ],
    ["an uppercase property name", () => createArgs(V, { properties: { Atime: "on" } }), /property name/],
    ["an empty value", () => setArgs(V, "atime", ""), /invalid value/],
    ["a value with a newline", () => setArgs(V, "atime", "on\noff"), /invalid value/],
    ["a user property outside skein.io", () => setArgs(V, "com.x:y", "1"), /skein.io:/],
    ["a user value with a tab", () => setArgs(V, "skein.io:x", "a\tb"), /control character/],
    ["deferred destroy of a dataset", () => destroyArgs(V, { deferred: true }), /snapshots only/],
    ["snapshot without @", () => snapshotArgs(V), /no '@'/],
    ["clone from a dataset", () => cloneArgs(V, "tank/skein/v2"), /no '@'/],
    ["rollback to a dataset", () => rollbackArgs(V), /no '@'/],
    ["get with no names", () => getArgs([], ["used"]), /at least one dataset/],
    ["get with no properties", () => getArgs([V], []), /at least one property/],
    ["get with a negative depth", () => getArgs([V], ["used"], { depth: -1 }), /depth/],
    ["list a bad column", () => listArgs([], { columns: ["name,used"] }), /property name/],
    ["send -I without from", () => sendArgs(S, { intermediates: true }, OPENZFS), /needs a from snapshot/],
    ["send from a dataset", () => sendArgs(S, { from: V }, OPENZFS), /no '@'/],
    ["a bad resume token", () => resumeSendArgs("-x", OPENZFS), /resume_token/],
    ["receive into a snapshot name", () => receiveArgs(S, {}, OPENZFS), /may only contain/],
    ["hold with no snapshots", () => holdArgs("keep", []), /at least one snapshot/],
    ["hold with a tag that looks like a flag", () => holdArgs("-r", [S]), /starts with '-'/],
    ["rename a dataset to a snapshot", () => renameArgs(V, S), /both must be/],
    ["rename a snapshot across datasets", () => renameArgs(S, "tank/skein/v2@s2"), /within its dataset/],
    ["rename a snapshot with -p", () => renameArgs(S, S1, { parents: true }), /datasets only/],
    ["zpool list of a bad pool", () => zpoolListArgs(["-a"], OPENZFS), /pool name/],
  ];

  it.each(invalid)("%s", (_name, build, why) => {
    expect(build).toThrow(InvalidInputError);
    expect(build).toThrow(why);
  });

  const missing: Array<[string, () => Argv]> = [
    ["send -w", () => sendArgs(S, { raw: true }, ZFS_FUSE)],
    ["send -c", () => sendArgs(S, { compressed: true }, ZFS_FUSE)],
    ["send -L", () => sendArgs(S, { largeBlocks: true }, ZFS_FUSE)],
    ["send -t", () => resumeSendArgs("1-abc", ZFS_FUSE)],
    ["receive -s", () => receiveArgs(V, { resumable: true }, ZFS_FUSE)],
    ["receive -u", () => receiveArgs(V, { noMount: true }, ZFS_FUSE)],
    ["receive -A", () => abortReceiveArgs(V, ZFS_FUSE)],
    ["holds", () => holdsArgs([S], ZFS_FUSE)],
  ];

  it.each(missing)("%s where this ZFS lacks it", (_name, build) => {
    expect(build).toThrow(ZfsError);
    expect(build).toThrow(/this ZFS cannot/);
  });
});
