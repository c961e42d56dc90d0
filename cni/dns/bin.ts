/**
 * `skein-dns`: the entry point of the DNS program the network agent runs, a
 * Bun-compiled executable (scripts/build-dns.mjs) that takes `skein dns`'s
 * flags. It is `skein dns` on Bun, whose batched UDP answers more queries per
 * core than Node (datagram/bun.ts).
 */
import { main } from "./main.ts";

const args = process.argv.slice(2);
// node:cluster starts a worker as `<runtime> <script> <args>`; in a compiled
// program the script is the program itself, which then arrives as an argument.
if (args[0] === process.argv[1]) args.shift();
process.exitCode = await main(args, []);
