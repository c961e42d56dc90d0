/**
 * The one way Skein runs external programs (`zfs`, `ip`, `bridge`, `mount`, …):
 * an argument array, never a shell string; a timeout; and on failure an error
 * that carries argv, exit code and stderr so logs explain what happened.
 */
import { type ExecFileException, execFile } from "node:child_process";
import { SkeinError } from "./errors.ts";

export type Argv = readonly [program: string, ...args: string[]];

export interface RunOptions {
  /** Milliseconds before the program is killed (SIGKILL). Default 60 s. */
  timeoutMs?: number;
  /** Written to the program's stdin. */
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

export class ExecError extends SkeinError {
  readonly argv: Argv;
  /** Exit code, or null when the program was killed or could not start. */
  readonly exitCode: number | null;
  readonly stderr: string;
  /** What the program printed before failing; some (CNI plugins, zfs-fuse) report errors there. */
  readonly stdout: string;
  readonly timedOut: boolean;

  constructor(
    argv: Argv,
    exitCode: number | null,
    stderr: string,
    timedOut: boolean,
    cause?: unknown,
    stdout = "",
  ) {
    const what = timedOut
      ? "timed out"
      : exitCode === null
        ? "could not be run"
        : `exited with code ${exitCode}`;
    const detail = stderr.trim() || (cause instanceof Error ? cause.message : "");
    super("ExecFailed", `${argv.join(" ")} ${what}${detail ? `: ${detail}` : ""}`, { cause });
    this.argv = argv;
    this.exitCode = exitCode;
    this.stderr = stderr;
    this.stdout = stdout;
    this.timedOut = timedOut;
  }
}

const DEFAULT_TIMEOUT_MS = 60_000;
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

export function run(argv: Argv, options: RunOptions = {}): Promise<RunResult> {
  const [program, ...args] = argv;
  return new Promise((resolve, reject) => {
    const child = execFile(
      program,
      args,
      {
        timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        killSignal: "SIGKILL",
        maxBuffer: MAX_OUTPUT_BYTES,
        env: options.env,
        cwd: options.cwd,
        encoding: "utf8",
      },
      (err: ExecFileException | null, stdout: string, stderr: string) => {
        if (!err) {
          resolve({ stdout, stderr });
          return;
        }
        const timedOut = err.killed === true && err.signal === "SIGKILL";
        const exitCode = typeof err.code === "number" ? err.code : null;
        reject(new ExecError(argv, exitCode, stderr ?? "", timedOut, err, stdout ?? ""));
      },
    );
    if (options.input !== undefined) {
      // A program may exit without reading its input; that is its business, not a crash of ours.
      child.stdin?.on("error", () => {});
      child.stdin?.end(options.input);
    }
  });
}

/** Runs a program whose stdout is JSON (`ip -j`, `bridge -j`, `zfs … -j`). */
export async function runJson<T>(argv: Argv, options?: RunOptions): Promise<T> {
  const { stdout } = await run(argv, options);
  try {
    return JSON.parse(stdout || "null") as T;
  } catch (cause) {
    throw new SkeinError("BadOutput", `${argv.join(" ")} printed output that is not JSON`, { cause });
  }
}

/** The argv that runs `argv` inside the network namespace at `netnsPath`. */
export function inNetns(netnsPath: string, argv: Argv): Argv {
  return ["nsenter", `--net=${netnsPath}`, "--", ...argv];
}
