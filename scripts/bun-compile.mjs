// Compiles one TypeScript entry point into a single executable with Bun
// (`bun build --compile`): Bun's runtime with the bundle inside, which runs on
// a host with no Node.js or Bun installed; it needs only glibc (2.17 or
// newer). Bun comes from the npm registry (the `bun` devDependency; its
// platform package carries the binary). Used for the programs where Bun beats
// Node at what they do: the CNI plugin (start-up) and the DNS responder (UDP).

import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

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
 * nodes (older CPUs, VMs with a generic CPU model) lack, and the programs run
 * as fast on baseline (measured). Bun fetches that runtime from the npm
 * registry on first use and caches it (~/.bun/install/cache).
 */
function targetFlags() {
  return process.arch === "x64" ? ["--target=bun-linux-x64-baseline"] : [];
}

/** Compiles `entry` (relative to the repository) into the executable `output`, replacing it atomically. */
export function compileWithBun(entry, output, flags, what) {
  const target = resolve(output);
  const temp = `${target}.${process.pid}.tmp`;
  try {
    execFileSync(
      bunBinary(),
      [
        "build",
        "--compile",
        "--minify",
        // A compiled program would otherwise read .env and bunfig.toml from
        // whatever directory the runtime starts it in.
        "--no-compile-autoload-dotenv",
        "--no-compile-autoload-bunfig",
        ...flags,
        ...targetFlags(),
        join(ROOT, entry),
        "--outfile",
        temp,
      ],
      { cwd: ROOT, stdio: "pipe" },
    );
    chmodSync(temp, 0o755);
    // Replace by rename: a program running right now keeps its old file.
    renameSync(temp, target);
  } catch (err) {
    rmSync(temp, { force: true });
    const stderr = err.stderr?.toString().trim();
    throw new Error(`compiling ${what} with Bun failed${stderr ? `: ${stderr}` : ""}`, { cause: err });
  }
}
