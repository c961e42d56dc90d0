/**
 * Readers for what `zfs`/`zpool` print with `-H`: one row per line, columns
 * separated by single tabs. Pure, so every output shape is a table test.
 */
import { SkeinError } from "../../kit/errors.ts";

export interface PropertyRow {
  name: string;
  property: string;
  value: string;
  /** `local`, `default`, `received`, `inherited from <dataset>`, `temporary`, or `-` (not settable / unset). */
  source: string;
}

function rows(stdout: string): string[][] {
  return stdout
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => line.split("\t"));
}

function badOutput(what: string, line: readonly string[]): never {
  throw new SkeinError("ZfsBadOutput", `unexpected ${what} output line: ${JSON.stringify(line.join("\t"))}`);
}

/** Rows of `zfs get -H -p -o name,property,value,source`. */
export function parseGetOutput(stdout: string): PropertyRow[] {
  return rows(stdout).map((cols) => {
    if (cols.length !== 4) badOutput("zfs get", cols);
    const [name = "", property = "", value = "", source = ""] = cols;
    return { name, property, value, source };
  });
}

/** Rows of `zfs list -H -o <columns>`, keyed by column name. */
export function parseListOutput<C extends string>(
  stdout: string,
  columns: readonly C[],
): Record<C, string>[] {
  return rows(stdout).map((cols) => {
    if (cols.length !== columns.length) badOutput("zfs list", cols);
    return Object.fromEntries(columns.map((c, i) => [c, cols[i] ?? ""])) as Record<C, string>;
  });
}

/** Groups `zfs get` rows by dataset: name → property → row. */
export function groupByName(rowsIn: readonly PropertyRow[]): Map<string, Map<string, PropertyRow>> {
  const byName = new Map<string, Map<string, PropertyRow>>();
  for (const row of rowsIn) {
    let props = byName.get(row.name);
    if (!props) {
      props = new Map();
      byName.set(row.name, props);
    }
    props.set(row.property, row);
  }
  return byName;
}

/** Whether a `zfs get` row carries a value someone set, rather than `-` for "none here". */
export function isSet(row: PropertyRow | undefined): row is PropertyRow {
  return row !== undefined && row.source !== "-";
}

/** A `-p` numeric value (`123456`), with `-` and `none` read as undefined. */
export function parseBytes(value: string): number | undefined {
  if (value === "-" || value === "none") return undefined;
  if (!/^\d+$/.test(value))
    throw new SkeinError("ZfsBadOutput", `expected a byte count, got ${JSON.stringify(value)}`);
  return Number(value);
}

const UNITS = "BKMGTPE";

/**
 * A size as `zpool list` prints it without `-p` (`123M`, `1.50G`, `0`): powers
 * of 1024, rounded by the tool to three significant digits, so approximate.
 */
export function parseHumanSize(value: string): number | undefined {
  if (value === "-" || value === "none") return undefined;
  const m = /^(\d+(?:\.\d+)?)([BKMGTPE]?)$/.exec(value);
  if (!m) throw new SkeinError("ZfsBadOutput", `expected a size like 1.5G, got ${JSON.stringify(value)}`);
  const exponent = UNITS.indexOf(m[2] || "B");
  return Math.round(Number(m[1]) * 1024 ** exponent);
}

export interface HoldRow {
  snapshot: string;
  tag: string;
  /** As printed (`Tue Nov 24 22:10 2026`, or seconds with `-p`). */
  created: string;
}

/** Rows of `zfs holds -H`. */
export function parseHoldsOutput(stdout: string): HoldRow[] {
  return rows(stdout).map((cols) => {
    if (cols.length !== 3) badOutput("zfs holds", cols);
    const [snapshot = "", tag = "", created = ""] = cols;
    return { snapshot, tag, created };
  });
}
