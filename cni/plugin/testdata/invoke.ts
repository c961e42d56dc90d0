/**
 * Test helpers: run the plugin as a real process inside a node namespace, as a
 * container runtime on that node would, and build the node's bridge as the
 * network agent would.
 */
import { join } from "node:path";
import { ExecError, inNetns, run } from "../../../kit/exec.ts";
import type { Netns } from "../../../test/fixtures/netns.ts";

export const REPO = join(import.meta.dirname, "..", "..", "..");
export const MAIN = join(REPO, "cni", "plugin", "main.ts");
/** The plugin runs on Bun (scripts/build-cni.mjs compiles it so); the `bun` devDependency runs it from source. */
export const BUN = join(REPO, "node_modules", ".bin", "bun");

export interface Outcome {
  exitCode: number;
  stdout: string;
  /** stdout parsed, when it is JSON. */
  json?: Record<string, unknown>;
}

/** Runs the plugin with `env` and `config` on stdin; a CNI error is an outcome, not a throw. */
export async function invoke(node: Netns, env: Record<string, string>, config: unknown): Promise<Outcome> {
  const input = typeof config === "string" ? config : JSON.stringify(config);
  let outcome: Outcome;
  try {
    const { stdout } = await run(inNetns(node.path, [BUN, MAIN]), {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", ...env },
      input,
    });
    outcome = { exitCode: 0, stdout };
  } catch (err) {
    if (!(err instanceof ExecError) || err.exitCode === null) throw err;
    outcome = { exitCode: err.exitCode, stdout: err.stdout };
  }
  if (outcome.stdout.trim()) outcome.json = JSON.parse(outcome.stdout) as Record<string, unknown>;
  return outcome;
}

/** What the agent would do on a node: the bridge with the gateway address, up. */
export async function makeBridge(node: Netns, bridge: string, gatewayCidr: string): Promise<void> {
  await node.exec(["ip", "link", "add", bridge, "type", "bridge"]);
  await node.exec(["ip", "addr", "add", gatewayCidr, "dev", bridge]);
  await node.exec(["ip", "link", "set", bridge, "up"]);
}

/** Names of the links in a namespace. */
export async function linkNames(ns: Netns): Promise<string[]> {
  const { stdout } = await ns.exec(["ip", "-j", "link", "show"]);
  return (JSON.parse(stdout) as { ifname: string }[]).map((l) => l.ifname).sort();
}
