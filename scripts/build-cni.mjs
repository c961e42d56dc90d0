// Compiles the CNI plugin (cni/plugin/main.ts) into one executable,
// dist/skein-cni, with Bun (`bun build --compile`): Bun's runtime with the
// plugin's bundle and its precompiled bytecode inside. It runs on a host with
// no Node.js or Bun installed; it needs only glibc (2.17 or newer).
//
// Why Bun and not a Node single-executable application: the runtime starts the
// plugin twice per pod (ADD, DEL), so start-up is much of its latency, and the
// plugin speaks rtnetlink itself through Bun's FFI (cni/netlink/rtnl-socket.ts)
// instead of starting `ip`. Measured by bench/cni.bench.ts on this project's
// 2-core machines (a VERSION call through nsenter, p50): the Node SEA with its
// code cache 43 ms, this binary 11-13 ms; ADD+DEL went from 2.5 times the
// reference plugins' latency to about the same. Bun comes from
// the npm registry (the `bun` devDependency; its platform package carries the
// binary).
//
// Usage: node scripts/build-cni.mjs [output]

import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ENTRY = join(ROOT, "cni/plugin/main.ts");

/**
 * The Bun binary installed by npm. The `bun` package's postinstall links the
 * platform package's binary over its placeholder; if install scripts were
 * skipped, the platform package still holds it.
 */
export function bunBinary() {
  const require = createRequire(join(ROOT, "package.json"));
  const candidates = [join(dirname(require.resolve("bun/package.json")), "bin", "bun.exe")];
  for (const pkg of [`@oven/bun-linux-${process.arch}`, `@oven/bun-linux-${process.arch}-baseline`]) {
    try {
      candidates.push(join(dirname(require.resolve(`${pkg}/package.json`)), "bin", "bun"));
    } catch {
      // not installed for this platform
    }
  }
  for (const candidate of candidates) {
    if (!existsSync(candidate)) continue;
    try {
      execFileSync(candidate, ["--version"], { stdio: "pipe" });
      return candidate;
    } catch {
      // the placeholder, or a binary this CPU cannot run
    }
  }
  throw new Error(
    "no runnable Bun binary in node_modules: run `npm ci` (with install scripts) to install the `bun` devDependency",
  );
}

/**
 * On x86-64, Bun's "baseline" runtime: the default one needs AVX2, which some
 * nodes (older CPUs, VMs with a generic CPU model) lack, and the plugin starts
 * as fast on baseline (measured). Bun fetches that runtime from the npm
 * registry on first use and caches it (~/.bun/install/cache).
 */
function targetFlags() {
  return process.arch === "x64" ? ["--target=bun-linux-x64-baseline"] : [];
}

export function buildCni(output = "dist/skein-cni") {
  const target = resolve(output);
  const temp = `${target}.${process.pid}.tmp`;
  try {
    execFileSync(
      bunBinary(),
      [
        "build",
        "--compile",
        // JavaScriptCore bytecode compiled at build time: half the start-up CPU.
        "--bytecode",
        "--minify",
        "--format=cjs",
        // A compiled program would otherwise read .env and bunfig.toml from
        // whatever directory the runtime starts it in.
        "--no-compile-autoload-dotenv",
        "--no-compile-autoload-bunfig",
        // A smaller heap: about 15% less start-up CPU and fewer page faults (measured).
        "--compile-exec-argv=--smol",
        ...targetFlags(),
        ENTRY,
        "--outfile",
        temp,
      ],
      { cwd: ROOT, stdio: "pipe" },
    );
    chmodSync(temp, 0o755);
    // Replace by rename: a plugin running right now keeps its old file.
    renameSync(temp, target);
  } catch (err) {
    rmSync(temp, { force: true });
    const stderr = err.stderr?.toString().trim();
    throw new Error(`compiling the CNI plugin with Bun failed${stderr ? `: ${stderr}` : ""}`, { cause: err });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildCni(process.argv[2]);
}
