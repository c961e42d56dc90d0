// Bundles the `skein` entry point into dist/ with esbuild. Two programs are
// compiled on their own into single executables with Bun: the CNI plugin,
// dist/skein-cni (scripts/build-cni.mjs), which runs on every pod start and
// must not load the Kubernetes client or anything else it does not use; and
// the DNS program, dist/skein-dns (scripts/build-dns.mjs), which the network
// agent runs.

import { copyFileSync } from "node:fs";
import { build } from "esbuild";
import { buildCni } from "./build-cni.mjs";
import { buildDns } from "./build-dns.mjs";

const common = { bundle: true, platform: "node", target: "node20", sourcemap: true, logLevel: "warning" };

await build({
  ...common,
  entryPoints: { skein: "cmd/skein.ts" },
  outExtension: { ".js": ".mjs" },
  format: "esm",
  outdir: "dist",
  // CommonJS dependencies call require(); give the ESM bundle one.
  banner: {
    js: "import { createRequire as __skeinRequire } from 'node:module'; const require = __skeinRequire(import.meta.url);",
  },
});

// The CSI services load their protocol definition at run time, from beside the bundle.
copyFileSync("csi/proto/csi.proto", "dist/csi.proto");

// The executable the agent installs into /opt/cni/bin: runs without Node on the host.
buildCni("dist/skein-cni");

// The DNS program the network agent starts from beside the bundle.
buildDns("dist/skein-dns");
