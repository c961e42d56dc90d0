/**
 * Argument builders for iptables rules the node network agent keeps. A rule is
 * its table, chain and match/target words; the agent makes it idempotent by
 * checking (`-C`) before appending (`-A`). `-w` waits for the xtables lock
 * instead of failing when kube-proxy or a CNI plugin holds it.
 */
import { InvalidInputError } from "../../kit/errors.ts";
import type { Argv } from "../../kit/exec.ts";

export type Table = "filter" | "nat";

export interface Rule {
  table: Table;
  chain: string;
  /** Match and target words, e.g. ["-s", "10.32.0.0/16", "-j", "ACCEPT"]. */
  spec: readonly string[];
}

const LOCK_WAIT_SECONDS = "5";
const CHAIN = /^[A-Za-z0-9_-]{1,28}$/;

function base(rule: Rule, action: "-C" | "-A" | "-D"): Argv {
  if (!CHAIN.test(rule.chain))
    throw new InvalidInputError(`${JSON.stringify(rule.chain)} is not an iptables chain name`);
  if (rule.spec.length === 0) throw new InvalidInputError("an iptables rule needs at least a target");
  return ["iptables", "-w", LOCK_WAIT_SECONDS, "-t", rule.table, action, rule.chain, ...rule.spec];
}

/** Exits 0 when the rule exists, 1 when it does not. */
export function ruleCheck(rule: Rule): Argv {
  return base(rule, "-C");
}

export function ruleAppend(rule: Rule): Argv {
  return base(rule, "-A");
}

export function ruleDelete(rule: Rule): Argv {
  return base(rule, "-D");
}

/** True when an `iptables -C` failure only means "no such rule". */
export function isRuleMissing(exitCode: number | null, stderr: string): boolean {
  return exitCode === 1 && !/Couldn't load|No chain|does not exist|Permission denied/i.test(stderr);
}
