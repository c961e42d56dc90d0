// Turns the CNI plugin's bundle (dist/skein-cni.cjs) into a single executable,
// dist/skein-cni: a copy of this Node binary with the bundle injected (Node's
// single-executable applications, injected with postject). It runs on a host
// with no Node.js installed; it needs only glibc and libstdc++, as node does.
//
// Why a SEA and not `node dist/skein-cni.cjs`: the runtime execs the plugin by
// path with no interpreter on the host, and the code cache built into the blob
// makes it start faster than node compiling the bundle (bench/cni.bench.ts
// measures both). Bun's compiled binaries would be the other choice; Bun is not
// available on this project's machines.
//
// Usage: node scripts/build-cni-sea.mjs [bundle.cjs] [output]

import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// The sentinel Node's SEA loader looks for (documented in Node's single-executable-applications page).
const FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

export function buildCniSea(bundle = "dist/skein-cni.cjs", output = "dist/skein-cni") {
  const work = mkdtempSync(join(tmpdir(), "skein-sea-"));
  try {
    const blob = join(work, "skein-cni.blob");
    const config = join(work, "sea-config.json");
    writeFileSync(
      config,
      JSON.stringify({
        main: resolve(bundle),
        output: blob,
        disableExperimentalSEAWarning: true,
        // V8's code cache for the bundle: the plugin skips compiling its code on every start.
        useCodeCache: true,
      }),
    );
    execFileSync(process.execPath, ["--experimental-sea-config", config], { stdio: "pipe" });
    const binary = join(work, "skein-cni");
    copyFileSync(process.execPath, binary);
    const postject = createRequire(import.meta.url).resolve("postject/dist/cli.js");
    // postject (LIEF) warns about node's unnamed note sections on every run; its
    // output is shown only if it fails.
    execFileSync(process.execPath, [postject, binary, "NODE_SEA_BLOB", blob, "--sentinel-fuse", FUSE], {
      stdio: "pipe",
    });
    chmodSync(binary, 0o755);
    // Replace by rename: a plugin running right now keeps its old file.
    copyFileSync(binary, `${output}.tmp`);
    chmodSync(`${output}.tmp`, 0o755);
    renameSync(`${output}.tmp`, output);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildCniSea(process.argv[2], process.argv[3]);
}
