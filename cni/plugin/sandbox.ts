/**
 * Checks that CNI_NETNS names a namespace other than the plugin's own, before
 * anything is created, so a bad path changes nothing. Whether it is a
 * *network* namespace rather than another kind, ADD asks the kernel when it
 * opens it (openNetns) and reports a wrong kind as the same error.
 */
import { statfsSync, statSync } from "node:fs";
import { CniCode, CniError } from "./errors.ts";

/** statfs(2) f_type of the namespace filesystem (linux/magic.h). */
const NSFS_MAGIC = 0x6e736673;

export function notANetns(path: string, detail: string): CniError {
  return new CniError(
    CniCode.InvalidEnvironment,
    "CNI_NETNS is not a network namespace",
    `${path}: ${detail}`,
  );
}

export async function checkSandbox(path: string): Promise<void> {
  let fsType: number;
  let inode: number;
  try {
    fsType = statfsSync(path).type;
    inode = statSync(path).ino;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new CniError(
        CniCode.UnknownContainer,
        "container network namespace does not exist",
        `CNI_NETNS ${path}`,
      );
    }
    throw new CniError(
      CniCode.InvalidEnvironment,
      "CNI_NETNS cannot be read",
      `${path}: ${(err as Error).message}`,
    );
  }
  if (fsType !== NSFS_MAGIC) throw notANetns(path, "not a namespace file");
  if (inode === statSync("/proc/self/ns/net").ino) {
    throw new CniError(CniCode.InvalidEnvironment, "CNI_NETNS is the plugin's own network namespace", path);
  }
}
