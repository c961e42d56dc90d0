// Bundles the `skein` entry point into dist/ with esbuild. The CNI plugin gets
// its own small bundle: it runs on every pod start and must not load the
// Kubernetes client or anything else it does not use.

import { existsSync } from "node:fs";
import { build } from "esbuild";

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

if (existsSync("cni/plugin/main.ts")) {
  await build({
    ...common,
    entryPoints: { "skein-cni": "cni/plugin/main.ts" },
    format: "cjs",
    outExtension: { ".js": ".cjs" },
    outdir: "dist",
  });
}
