/**
 * The plugin as a function of (environment, stdin) to (stdout, exit code):
 * parse and validate, dispatch to one command, and turn every failure into the
 * spec's error JSON. main.ts only does the process I/O around it.
 *
 * CHECK, STATUS and GC run `ip` and are loaded only when called: ADD and DEL,
 * run on every pod start and stop, need no child-process machinery, and
 * loading it costs start-up time.
 */
import { add } from "./add.ts";
import { del } from "./del.ts";
import { errorResult } from "./errors.ts";
import { parseEnvironment, parseNetConf } from "./request.ts";
import { formatResult, LATEST_VERSION, SUPPORTED_VERSIONS } from "./result.ts";

export interface PluginOutput {
  stdout: string;
  exitCode: number;
}

/** The version the caller speaks, if stdin says so, for answers given before the config is validated. */
function callerVersion(stdin: string): string {
  try {
    const version = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    if (typeof version === "string" && (SUPPORTED_VERSIONS as readonly string[]).includes(version))
      return version;
  } catch {
    // not JSON: answer in the latest version
  }
  return LATEST_VERSION;
}

function json(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}

export async function runPlugin(
  env: Readonly<Record<string, string | undefined>>,
  stdin: string,
): Promise<PluginOutput> {
  try {
    const invocation = parseEnvironment(env);
    if (invocation.command === "VERSION") {
      return {
        stdout: json({ cniVersion: callerVersion(stdin), supportedVersions: SUPPORTED_VERSIONS }),
        exitCode: 0,
      };
    }
    const conf = parseNetConf(stdin, invocation.command);
    switch (invocation.command) {
      case "ADD":
        return { stdout: json(formatResult(await add(invocation, conf), conf.cniVersion)), exitCode: 0 };
      case "DEL":
        await del(invocation, conf);
        return { stdout: "", exitCode: 0 };
      case "CHECK":
        await (await import("./check.ts")).check(invocation, conf);
        return { stdout: "", exitCode: 0 };
      case "STATUS":
        await (await import("./status.ts")).status(conf);
        return { stdout: "", exitCode: 0 };
      case "GC":
        await (await import("./gc.ts")).gc(conf);
        return { stdout: "", exitCode: 0 };
    }
  } catch (err) {
    return { stdout: json(errorResult(err, callerVersion(stdin))), exitCode: 1 };
  }
}
