import { describe, expect, it } from "vitest";
import {
  detectCapabilities,
  flagsOf,
  parseCapabilities,
  usageOf,
  type ZfsCapabilities,
} from "./capabilities.ts";

// What `zfs` and `zpool` print without a command (the lines the probe reads, abridged).
const ZFS_FUSE_USAGE = `missing command
usage: zfs command args ...
where 'command' is one of the following:

\tcreate [-p] [-o property=value] ... <filesystem>
\tcreate [-ps] [-b blocksize] [-o property=value] ... -V <size> <volume>
\tdestroy [-rRf] <filesystem|volume>
\tdestroy [-rRd] <snapshot>

\tlist [-rH][-d max] [-o property[,...]] [-t type[,...]] [-s property] ...
\t    [-S property] ... [filesystem|volume|snapshot] ...

\tsend [-RDp] [-[iI] snapshot] <snapshot>
\treceive [-vnF] <filesystem|volume|snapshot>
\treceive [-vnF] -d <filesystem>

\thold [-r] <tag> <snapshot> ...
\tholds [-r] <snapshot> ...
\trelease [-r] <tag> <snapshot> ...
`;
const ZFS_FUSE_ZPOOL_USAGE = `missing command
usage: zpool command args ...
\tlist [-H] [-o property[,...]] [pool] ...
\tiostat [-v] [-T d|u] [pool] ... [interval [count]]
`;

const OPENZFS_22_USAGE = `usage: zfs command args ...
where 'command' is one of the following:

\tversion

\tcreate [-Pnpuv] [-o property=value] ... <filesystem>
\tcreate [-Pnpsv] [-b blocksize] [-o property=value] ... -V <size> <volume>
\tbookmark <snapshot|bookmark> <newbookmark>

\tlist [-Hp] [-r|-d max] [-o property[,...]] [-s property]...
\t    [-S property]... [-t type[,...]] [filesystem|volume|snapshot] ...

\tsend [-DLPbcehnpsVvw] [-i|-I snapshot]
\t     [-R [-X dataset[,dataset]...]]     <snapshot>
\tsend [-DnVvPLecw] [-i snapshot|bookmark] <filesystem|volume|snapshot>
\tsend [-DnPpVvLec] [-i bookmark|snapshot] --redact <bookmark> <snapshot>
\tsend [-nVvPe] -t <receive_resume_token>
\tsend [-PnVv] --saved filesystem
\treceive [-vMnsFhu] [-o <property>=<value>] ... [-x <property>] ...
\t    <filesystem|volume|snapshot>
\treceive [-vMnsFhu] [-o <property>=<value>] ... [-x <property>] ... 
\t    [-d | -e] <filesystem>
\treceive -A <filesystem|volume>

\thold [-r] <tag> <snapshot> ...
\tholds [-rHp] <snapshot> ...
\trelease [-r] <tag> <snapshot> ...
`;
const OPENZFS_ZPOOL_USAGE = `usage: zpool command args ...
\tlist [-gHLpPv] [-o property[,...]] [-T d|u] [pool] ...
\t    [interval [count]]
`;
const OPENZFS_23_USAGE = OPENZFS_22_USAGE.replace(
  "\tlist [-Hp] [-r|-d max]",
  "\tlist [-Hp] [-j [--json-int]] [-r|-d max]",
);
const OPENZFS_VERSION = "zfs-2.2.2-1\nzfs-kmod-2.2.2-1\n";
const HOLDS_MISSING_ARGUMENT = "missing snapshot argument\nusage:\n\tholds [-rHp] <snapshot> ...\n";

describe("usage parsing", () => {
  it("joins a subcommand's continuation lines and ignores other subcommands", () => {
    expect(usageOf(OPENZFS_22_USAGE, "receive")).toEqual([
      "receive [-vMnsFhu] [-o <property>=<value>] ... [-x <property>] ... <filesystem|volume|snapshot>",
      "receive [-vMnsFhu] [-o <property>=<value>] ... [-x <property>] ... [-d | -e] <filesystem>",
      "receive -A <filesystem|volume>",
    ]);
    expect(usageOf(ZFS_FUSE_USAGE, "hold")).toEqual(["hold [-r] <tag> <snapshot> ..."]);
  });

  it("collects single-letter flags from groups and lone options, not from --long ones", () => {
    expect([...flagsOf(usageOf(OPENZFS_22_USAGE, "send"))].sort().join("")).toBe("DILPRVXbcehinpstvw");
    expect([...flagsOf(usageOf(ZFS_FUSE_USAGE, "send"))].sort().join("")).toBe("DRp");
  });
});

describe("capabilities", () => {
  const table: Array<[string, Parameters<typeof parseCapabilities>[0], ZfsCapabilities]> = [
    [
      "zfs-fuse 0.7",
      {
        zfsUsage: ZFS_FUSE_USAGE,
        zpoolUsage: ZFS_FUSE_ZPOOL_USAGE,
        version: ZFS_FUSE_USAGE.replace("missing command", "unrecognized command 'version'"),
        holds: "internal error: /usr/lib/zfs/pyzfs.py not found",
      },
      {
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
      },
    ],
    [
      "OpenZFS 2.2 with its kernel module",
      {
        zfsUsage: OPENZFS_22_USAGE,
        zpoolUsage: OPENZFS_ZPOOL_USAGE,
        version: OPENZFS_VERSION,
        holds: HOLDS_MISSING_ARGUMENT,
      },
      {
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
      },
    ],
    [
      "OpenZFS 2.3 tools without the kernel module loaded",
      {
        zfsUsage: OPENZFS_23_USAGE,
        zpoolUsage: OPENZFS_ZPOOL_USAGE,
        version: "zfs-2.3.1-1\n",
        holds: HOLDS_MISSING_ARGUMENT,
      },
      {
        version: "zfs-2.3.1-1",
        resumable: true,
        receiveNoMount: true,
        rawSend: true,
        compressedSend: true,
        largeBlocks: true,
        bookmarks: true,
        zvols: false,
        jsonOutput: true,
        parsableZpoolList: true,
        listHolds: true,
      },
    ],
  ];

  it.each(table)("%s", (_name, probe, expected) => {
    expect(parseCapabilities(probe)).toEqual(expected);
  });

  it("detects the zfs-fuse installed here", async () => {
    expect(await detectCapabilities()).toEqual(table[0]?.[2]);
  });
});
