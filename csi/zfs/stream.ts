/**
 * `zfs send | zfs receive` without a shell. kit/exec.ts `run` buffers a
 * program's whole output, which a send stream (as large as the dataset) must
 * never be, so this joins two argument arrays with a pipe instead. Failures are
 * the same ExecError `run` throws: argv, exit code, stderr.
 *
 * When both sides fail, the cause is usually one of them and the other is its
 * echo: a receive that gives up makes the sender die of a broken pipe, and a
 * sender that dies leaves the receiver with a truncated stream. The error
 * reported is the cause: the sink's when the source only saw its reader go.
 */
import { type ChildProcess, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { type Argv, ExecError } from "../../kit/exec.ts";

interface Outcome {
  argv: Argv;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  error: Error | undefined;
}

function start(argv: Argv, stdin: "ignore" | Readable): { child: ChildProcess; done: Promise<Outcome> } {
  const [program, ...args] = argv;
  const child = spawn(program, args, { stdio: [stdin, "pipe", "pipe"] });
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    if (stderr.length < 64 * 1024) stderr += chunk;
  });
  const done = new Promise<Outcome>((resolve) => {
    let error: Error | undefined;
    child.on("error", (err) => {
      error = err;
    });
    child.on("close", (exitCode, signal) => resolve({ argv, exitCode, signal, stderr, error }));
  });
  return { child, done };
}

function failed(o: Outcome): boolean {
  return o.exitCode !== 0 || o.error !== undefined;
}

/** Node's stdio "pipes" are socket pairs, so a vanished reader shows as a reset connection. */
function brokenPipe(o: Outcome): boolean {
  return o.signal === "SIGPIPE" || /broken pipe|connection reset by peer/i.test(o.stderr);
}

function toError(o: Outcome, timedOut: boolean): ExecError {
  return new ExecError(o.argv, o.signal || o.error ? null : o.exitCode, o.stderr, timedOut, o.error);
}

/** Runs `source | sink`; resolves when both succeed, else rejects with the ExecError of the cause. */
export async function pipeCommands(
  source: Argv,
  sink: Argv,
  options: { timeoutMs?: number } = {},
): Promise<void> {
  const from = start(source, "ignore");
  // The sink reads the source's pipe directly; this process then lets go of it, so the
  // source gets EPIPE (and stops) as soon as the sink exits, as in a shell pipeline.
  const to = from.child.stdout ? start(sink, from.child.stdout) : start(sink, "ignore");
  from.child.stdout?.destroy();
  // The sink's stdout is not read by anyone; keep it drained so it never blocks.
  to.child.stdout?.resume();

  let timedOut = false;
  const timer =
    options.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          from.child.kill("SIGKILL");
          to.child.kill("SIGKILL");
        }, options.timeoutMs);
  try {
    const [sent, received] = await Promise.all([from.done, to.done]);
    if (!failed(sent) && !failed(received)) return;
    if (failed(received) && (!failed(sent) || brokenPipe(sent))) throw toError(received, timedOut);
    throw toError(sent, timedOut);
  } finally {
    if (timer) clearTimeout(timer);
  }
}
