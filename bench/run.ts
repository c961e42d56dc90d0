/**
 * `npm run bench -- <name> [flags]`: runs bench/<name>.ts. Each benchmark
 * measures Skein against a yardstick in the same run and ends with one line per
 * ratio, `RATIO <metric> <value>` (and `RESULT <metric> <value>` for absolute
 * numbers), after the medians they come from.
 */
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith(".bench.ts"))
  .map((f) => f.replace(/\.bench\.ts$/, ""))
  .sort();

const [name, ...args] = process.argv.slice(2);
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- <name>\nbenchmarks: ${available.join(", ") || "(none yet)"}`);
  process.exit(2);
}
const bench = (await import(join(here, `${name}.bench.ts`))) as {
  default: (args: string[]) => Promise<void>;
};
await bench.default(args);
