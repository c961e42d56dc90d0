/**
 * The `skein` CNI plugin executable: stdin and CNI_* environment in, result or
 * error JSON out. Imports stay minimal (no API client, no logger): this file is
 * bundled into a single executable that starts on every pod creation.
 */
import { readFileSync, writeSync } from "node:fs";
import { CniCode, CniError, errorResult } from "./errors.ts";
import { runPlugin } from "./plugin.ts";
import { LATEST_VERSION } from "./result.ts";

/**
 * Writes stdout in one blocking call: under Bun, `process.stdout` builds a
 * Node-style stream on first use, which costs milliseconds of every start.
 */
function writeStdout(text: string): void {
  const bytes = Buffer.from(text);
  let offset = 0;
  try {
    while (offset < bytes.length) offset += writeSync(1, bytes, offset);
  } catch (err) {
    // A non-blocking stdout (only if the runtime handed one over): let the stream wait.
    if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
    process.stdout.write(bytes.subarray(offset));
  }
}

/**
 * Reads stdin in one blocking call: the runtime writes the whole config into
 * a pipe and closes it. Bun's `process.stdin` stream takes tens of
 * milliseconds to start, a third of an ADD. A non-blocking stdin (EAGAIN,
 * only if the runtime handed one over) is read as a stream instead.
 */
async function readStdin(): Promise<string> {
  try {
    return readFileSync(0, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function main(): Promise<void> {
  let stdin: string;
  try {
    stdin = await readStdin();
  } catch (err) {
    const failure = new CniError(
      CniCode.IoFailure,
      "could not read the network configuration from stdin",
      (err as Error).message,
    );
    writeStdout(`${JSON.stringify(errorResult(failure, LATEST_VERSION))}\n`);
    process.exitCode = 1;
    return;
  }
  const { stdout, exitCode } = await runPlugin(process.env, stdin);
  writeStdout(stdout);
  process.exitCode = exitCode;
}

void main();
