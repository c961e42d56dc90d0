import { describe, expect, it } from "vitest";
import { ExecError } from "../../kit/exec.ts";
import { classifyStderr, toZfsError, ZfsError, type ZfsErrorCode } from "./errors.ts";

describe("classifyStderr", () => {
  // Messages as zfs-fuse and OpenZFS print them.
  const table: Array<[string, ZfsErrorCode]> = [
    ["cannot create 'p/skein/v1': dataset already exists", "ZfsAlreadyExists"],
    ["cannot create snapshot 'p/v@s1': dataset already exists", "ZfsAlreadyExists"],
    ["cannot hold 'p/v@s1': tag already exists on this dataset", "ZfsAlreadyExists"],
    [
      "cannot receive new filesystem stream: destination 'p/skein/v1' exists\nmust specify -F to overwrite it",
      "ZfsAlreadyExists",
    ],
    ["cannot open 'p/skein/none': dataset does not exist", "ZfsNotFound"],
    ["cannot create 'nopool/x': no such pool 'nopool'", "ZfsNotFound"],
    ["cannot create 'p/nope/x': parent does not exist", "ZfsNotFound"],
    ["cannot release 'keep' from 'p/v@s1': no such tag on this dataset", "ZfsNotFound"],
    ["cannot create 'p/skein/big': out of space", "ZfsOutOfSpace"],
    ["cannot set property for 'p/v': size is greater than available space", "ZfsOutOfSpace"],
    ["dd: error writing '/mnt/f': Disk quota exceeded", "ZfsOutOfSpace"],
    ["cannot set property for 'p/v': size is less than current used or reserved space", "ZfsQuotaBelowUsage"],
    ["cannot destroy 'p/v@s1': dataset is busy", "ZfsBusy"],
    ["cannot destroy 'p': pool is busy", "ZfsBusy"],
    ["cannot unmount '/mnt/v1': umount failed: target is busy.", "ZfsBusy"],
    [
      "cannot destroy 'p/v': filesystem has children\nuse '-r' to destroy the following datasets:",
      "ZfsHasDependents",
    ],
    ["cannot destroy 'p/v@s1': snapshot has dependent clones", "ZfsHasDependents"],
    ["cannot rollback to 'p/v@s1': more recent snapshots exist", "ZfsHasDependents"],
    [
      "cannot receive incremental stream: destination p/v has been modified\nsince most recent snapshot",
      "ZfsDiverged",
    ],
    [
      "cannot receive incremental stream: most recent snapshot of p/v does not\nmatch incremental source",
      "ZfsDiverged",
    ],
    ["cannot create 'p/v': invalid property 'bogus'", "ZfsInvalidArgument"],
    ["cannot create 'p/v': 'recordsize' must be power of 2 from 512 to 128k", "ZfsInvalidArgument"],
    ["cannot create 'p/v': bad numeric value 'x'", "ZfsInvalidArgument"],
    ["invalid option 'u'\nusage:\n\treceive [-vnF] <filesystem|volume|snapshot>", "ZfsUnsupported"],
    ["internal error: /usr/lib/zfs/pyzfs.py not found", "ZfsUnsupported"],
    [
      "connect: No such file or directory\nPlease make sure that the zfs-fuse daemon is running.\ninternal error: failed to initialize ZFS library",
      "ZfsUnavailable",
    ],
    [
      "The ZFS modules are not loaded.\nTry running '/sbin/modprobe zfs' as root to load them.",
      "ZfsUnavailable",
    ],
    ["something nobody has seen before", "ZfsFailed"],
  ];

  it.each(table)("%j → %s", (stderr, code) => {
    expect(classifyStderr(stderr)).toBe(code);
  });
});

describe("toZfsError", () => {
  it("keeps argv, stderr and the cause", () => {
    const exec = new ExecError(
      ["zfs", "create", "p/v"],
      1,
      "cannot create 'p/v': dataset already exists\n",
      false,
    );
    const err = toZfsError(exec) as ZfsError;
    expect(err).toBeInstanceOf(ZfsError);
    expect(err.code).toBe("ZfsAlreadyExists");
    expect(err.argv).toEqual(["zfs", "create", "p/v"]);
    expect(err.stderr).toContain("already exists");
    expect(err.message).toContain("zfs create p/v exited with code 1");
    expect(err.cause).toBe(exec);
  });

  it("reports a timeout", () => {
    const err = toZfsError(new ExecError(["zfs", "list"], null, "", true)) as ZfsError;
    expect(err.code).toBe("ZfsTimeout");
  });

  it("reports a missing program as unavailable", () => {
    const err = toZfsError(new ExecError(["zfs", "list"], null, "", false)) as ZfsError;
    expect(err.code).toBe("ZfsUnavailable");
  });

  it("passes other errors through", () => {
    const other = new TypeError("x");
    expect(toZfsError(other)).toBe(other);
  });
});
