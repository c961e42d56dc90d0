// Compiles the CNI plugin (cni/plugin/main.ts) into one executable,
// dist/skein-cni, with Bun (scripts/bun-compile.mjs): the runtime, the
// plugin's bundle and its precompiled bytecode.
//
// Why Bun and not a Node single-executable application: the runtime starts the
// plugin twice per pod (ADD, DEL), so start-up is much of its latency, and the
// plugin speaks rtnetlink itself through Bun's FFI (cni/netlink/rtnl-socket.ts)
// instead of starting `ip`. Measured by bench/cni.bench.ts on this project's
// 2-core machines (a VERSION call through nsenter, p50): the Node SEA with its
// code cache 43 ms, this binary 11-13 ms; ADD+DEL went from 2.5 times the
// reference plugins' latency to about the same.
//
// Usage: node scripts/build-cni.mjs [output]

import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { compileWithBun } from "./bun-compile.mjs";

export function buildCni(output = "dist/skein-cni") {
  compileWithBun(
    "cni/plugin/main.ts",
    output,
    [
      // JavaScriptCore bytecode compiled at build time: half the start-up CPU.
      "--bytecode",
      "--format=cjs",
      // A smaller heap: about 15% less start-up CPU and fewer page faults (measured).
      "--compile-exec-argv=--smol",
    ],
    "the CNI plugin",
  );
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildCni(process.argv[2]);
}
