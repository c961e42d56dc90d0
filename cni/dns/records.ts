/**
 * The names the responder serves, as one in-memory index over the healthy pods
 * (PodRecords decides which pods those are).
 *
 * Design note. A pod contributes one `PodRecord`: its addresses and the
 * relative names they answer for ("web" from its annotation, "db-0.prod" from
 * its own name and namespace). The store keeps, per name, the member pods and
 * their addresses sorted by address, so every answer lists the same set in the
 * same base order; answers are that order rotated by a per-name counter that
 * moves once per answer. Over any k consecutive answers for a name with k
 * addresses each address comes first exactly once: a fair share for clients
 * that take the first address, without randomness to test around.
 *
 * A and AAAA answers rotate with separate counters: resolvers ask both at once
 * (getaddrinfo), and one shared counter would step twice per lookup and give
 * an even-sized set the same first address every time.
 *
 * `version` moves on every change, so caches of encoded answers know when to
 * forget.
 */
import { isIP } from "node:net";
import { parentNames } from "./names.ts";

export interface PodRecord {
  /** The pod's informer key, `namespace/name`. */
  key: string;
  /** Relative names (below the domain) this pod answers for. */
  names: readonly string[];
  /** Canonical addresses (see canonicalAddress). */
  addresses: readonly string[];
  /** Relative name that reverse lookups of the pod's addresses return. */
  pointer: string;
}

export type Family = 4 | 6;

interface NameSet {
  members: Map<string, readonly string[]>;
  v4: string[];
  v6: string[];
  nextV4: number;
  nextV6: number;
}

export interface NameAnswer {
  v4: readonly string[];
  v6: readonly string[];
}

const NO_ADDRESSES: NameAnswer = Object.freeze({ v4: [], v6: [] });

export class RecordStore {
  private readonly pods = new Map<string, PodRecord>();
  private readonly names = new Map<string, NameSet>();
  /** Empty non-terminals ("prod" under "db-0.prod"), counted by how many names hold them up. */
  private readonly parents = new Map<string, number>();
  /** address → pod key → pointer name. */
  private readonly pointers = new Map<string, Map<string, string>>();
  private changes = 0;

  /** Moves whenever any answer could differ. */
  get version(): number {
    return this.changes;
  }

  /** Adds or replaces the pod's records; a record equal to the one held changes nothing. */
  set(record: PodRecord): void {
    const old = this.pods.get(record.key);
    if (old && sameRecord(old, record)) return;
    if (old) this.unindex(old);
    const copy: PodRecord = {
      key: record.key,
      names: [...new Set(record.names)],
      addresses: [...new Set(record.addresses)],
      pointer: record.pointer,
    };
    this.pods.set(copy.key, copy);
    this.index(copy);
    this.changes++;
  }

  delete(key: string): void {
    const old = this.pods.get(key);
    if (!old) return;
    this.pods.delete(key);
    this.unindex(old);
    this.changes++;
  }

  has(key: string): boolean {
    return this.pods.has(key);
  }

  /**
   * The addresses of a relative name in base order, NO_ADDRESSES for a name
   * that exists without addresses (an empty non-terminal), undefined for a
   * name that does not exist.
   */
  lookup(relative: string): NameAnswer | undefined {
    const set = this.names.get(relative);
    if (set) return set;
    return this.parents.has(relative) ? NO_ADDRESSES : undefined;
  }

  /** The rotation for the next answer of `relative` in `family`; moves the counter. */
  nextRotation(relative: string, family: Family): number {
    const set = this.names.get(relative);
    if (!set) return 0;
    if (family === 4) return set.nextV4++ % Math.max(1, set.v4.length);
    return set.nextV6++ % Math.max(1, set.v6.length);
  }

  /** Relative names that reverse lookups of `address` return (usually one). */
  pointersOf(address: string): string[] {
    const owners = this.pointers.get(address);
    return owners ? [...new Set(owners.values())].sort() : [];
  }

  /** Sizes, for metrics. */
  counts(): { pods: number; names: number; addresses: number } {
    let addresses = 0;
    for (const set of this.names.values()) addresses += set.v4.length + set.v6.length;
    return { pods: this.pods.size, names: this.names.size, addresses };
  }

  private index(record: PodRecord): void {
    for (const name of record.names) {
      let set = this.names.get(name);
      if (!set) {
        set = { members: new Map(), v4: [], v6: [], nextV4: 0, nextV6: 0 };
        this.names.set(name, set);
        for (const parent of parentNames(name)) this.parents.set(parent, (this.parents.get(parent) ?? 0) + 1);
      }
      set.members.set(record.key, record.addresses);
      rebuild(set);
    }
    for (const address of record.addresses) {
      let owners = this.pointers.get(address);
      if (!owners) {
        owners = new Map();
        this.pointers.set(address, owners);
      }
      owners.set(record.key, record.pointer);
    }
  }

  private unindex(record: PodRecord): void {
    for (const name of record.names) {
      const set = this.names.get(name);
      if (!set) continue;
      set.members.delete(record.key);
      if (set.members.size > 0) {
        rebuild(set);
        continue;
      }
      this.names.delete(name);
      for (const parent of parentNames(name)) {
        const left = (this.parents.get(parent) ?? 1) - 1;
        if (left > 0) this.parents.set(parent, left);
        else this.parents.delete(parent);
      }
    }
    for (const address of record.addresses) {
      const owners = this.pointers.get(address);
      owners?.delete(record.key);
      if (owners?.size === 0) this.pointers.delete(address);
    }
  }
}

function rebuild(set: NameSet): void {
  const all = new Set<string>();
  for (const addresses of set.members.values()) for (const a of addresses) all.add(a);
  const sorted = [...all].sort(compareAddresses);
  set.v4 = sorted.filter((a) => isIP(a) === 4);
  set.v6 = sorted.filter((a) => isIP(a) === 6);
}

/** Numeric order for IPv4 (10.0.0.9 before 10.0.0.10); text order otherwise. */
export function compareAddresses(a: string, b: string): number {
  if (isIP(a) === 4 && isIP(b) === 4) {
    const x = a.split(".").map(Number);
    const y = b.split(".").map(Number);
    for (let i = 0; i < 4; i++) if (x[i] !== y[i]) return (x[i] ?? 0) - (y[i] ?? 0);
    return 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** `list` started at `start`: [a, b, c] rotated by 1 is [b, c, a]. */
export function rotate<T>(list: readonly T[], start: number): T[] {
  if (list.length === 0) return [];
  const at = ((start % list.length) + list.length) % list.length;
  return [...list.slice(at), ...list.slice(0, at)];
}

function sameRecord(a: PodRecord, b: PodRecord): boolean {
  return a.pointer === b.pointer && sameList(a.names, b.names) && sameList(a.addresses, b.addresses);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
