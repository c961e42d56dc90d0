// Compiles the DNS program (cni/dns/bin.ts, `skein dns` on Bun) into one
// executable, dist/skein-dns, with Bun (scripts/bun-compile.mjs). The network
// agent runs it beside itself (`--dns-program`).
//
// Why Bun: per query, receiving and sending the datagram is most of an
// answer's cost, and Bun reads datagrams in batches and sends replies in
// batches (cni/dns/datagram/bun.ts), where Node's dgram makes one system call
// each. Measured by bench/dns.bench.ts on this project's 2-core machines: see
// docs/dns.md.
//
// Usage: node scripts/build-dns.mjs [output]

import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { compileWithBun } from "./bun-compile.mjs";

export function buildDns(output = "dist/skein-dns") {
  compileWithBun("cni/dns/bin.ts", output, [], "the DNS program");
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildDns(process.argv[2]);
}
