/**
 * Test helpers: run the plugin as a real process inside a node namespace, as a
 * container runtime on that node would, and build the node's bridge as the
 * network agent would.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import type { Netns } from "../../../test/fixtures/netns.ts";

export const REPO = join(import.meta.dirname, "..", "..", "..");
export const MAIN = join(REPO, "cni", "plugin", "main.ts");

export interface Outcome {
  exitCode: number;
  stdout: string;
  /** stdout parsed, when it is JSON. */
  json?: Record<string, unknown>;
}

/**
 * kit/exec's run() rejects on a non-zero exit without the program's stdout,
 * and a CNI plugin reports its errors on stdout: hence execFile here.
 */
export function invoke(node: Netns, env: Record<string, string>, config: unknown): Promise<Outcome> {
  const stdin = typeof config === "string" ? config : JSON.stringify(config);
  return new Promise((resolve, reject) => {
    const child = execFile(
      "nsenter",
      [`--net=${node.path}`, "--", process.execPath, "--import", "tsx", MAIN],
      {
        cwd: REPO,
        env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", ...env },
        timeout: 60_000,
      },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== "number") {
          reject(new Error(`plugin could not run: ${err.message} ${stderr}`));
          return;
        }
        const outcome: Outcome = { exitCode: err ? Number(err.code) : 0, stdout };
        if (stdout.trim()) outcome.json = JSON.parse(stdout) as Record<string, unknown>;
        resolve(outcome);
      },
    );
    child.stdin?.end(stdin);
  });
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
