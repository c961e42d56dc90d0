/**
 * The `skein` CNI plugin executable: stdin and CNI_* environment in, result or
 * error JSON out. Imports stay minimal (no API client, no logger): this file is
 * bundled into a single executable that starts on every pod creation.
 */
import { CniCode, CniError, errorResult } from "./errors.ts";
import { runPlugin } from "./plugin.ts";
import { LATEST_VERSION } from "./result.ts";

async function readStdin(): Promise<string> {
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
    process.stdout.write(`${JSON.stringify(errorResult(failure, LATEST_VERSION))}\n`);
    process.exitCode = 1;
    return;
  }
  const { stdout, exitCode } = await runPlugin(process.env, stdin);
  process.stdout.write(stdout);
  process.exitCode = exitCode;
}

void main();
