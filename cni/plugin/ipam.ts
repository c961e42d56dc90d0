/**
 * The node's address records: one file per allocated address in
 * `<dataDir>/<network>/`, named by the address, holding the attachment
 * (container ID + interface name) that owns it. On disk, so allocations survive
 * plugin restarts and reboots; cheap to inspect by hand (`cat 10.32.1.5`).
 *
 * Uniqueness comes from creating each record exclusively (written to a temp
 * file, then link(2), which fails if the address is taken), so a record is
 * never seen half-written. The directory lock serialises allocators so they do
 * not race for the same free address, and keeps GC from deleting a record an
 * allocation is creating. Allocation goes round-robin from the last address
 * handed out (`last_reserved`), so a freed address is not reused at once: peers
 * on the shared L2 segment may still hold its old MAC in their ARP caches.
 *
 * No fsync: records outlive plugin crashes and clean reboots through the page
 * cache. A machine crash kills every pod with it, and the runtime DELs or GCs
 * their attachments afterwards; the worst a crash can leave is a record whose
 * content was lost, which keeps its address (never handed out twice) until GC.
 * Skipping fsync keeps the lock held for microseconds, not disk flushes.
 * File operations are synchronous for the reason lock.ts gives.
 */
import {
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import * as ipv4 from "../../kit/ipv4.ts";
import { CniCode, CniError } from "./errors.ts";
import { withLock } from "./lock.ts";
import type { Attachment } from "./request.ts";
import { uniqueSuffix } from "./unique.ts";

const LOCK = "lock";
const CURSOR = "last_reserved";
const TEMP_SUFFIX = ".tmp";
/** Temp files older than this belong to a crashed plugin; GC removes them. */
const TEMP_MAX_AGE_MS = 60_000;

export interface Allocation {
  address: string;
  attachment: Attachment;
}

function key(a: Attachment): string {
  return `${a.containerID}\u0000${a.ifname}`;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

export class AddressStore {
  readonly dir: string;

  constructor(dataDir: string, network: string) {
    this.dir = join(dataDir, network);
  }

  private locked<T>(fn: () => T): Promise<T> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    return withLock(join(this.dir, LOCK), fn);
  }

  private names(): string[] {
    try {
      return readdirSync(this.dir);
    } catch (err) {
      if (errno(err) === "ENOENT") return [];
      throw err;
    }
  }

  /** Every record; safe without the lock (records appear and vanish atomically). */
  list(): Allocation[] {
    return this.names()
      .filter(ipv4.isAddress)
      .map((name) => this.read(name))
      .filter((r): r is Allocation => r !== undefined);
  }

  private read(address: string): Allocation | undefined {
    let text: string;
    try {
      text = readFileSync(join(this.dir, address), "utf8");
    } catch (err) {
      if (errno(err) === "ENOENT") return undefined; // released meanwhile
      throw err;
    }
    try {
      const { containerID, ifname } = JSON.parse(text) as Attachment;
      if (typeof containerID === "string" && typeof ifname === "string") {
        return { address, attachment: { containerID, ifname } };
      }
    } catch {
      // fall through: a record we cannot read still holds its address
    }
    return { address, attachment: { containerID: "", ifname: "" } };
  }

  find(attachment: Attachment): string | undefined {
    const k = key(attachment);
    return this.list().find((r) => key(r.attachment) === k)?.address;
  }

  /**
   * The attachment's address in `block`: the one it already holds (`fresh`
   * false: a repeated ADD), else the next free one after the last handed out.
   * Never the block's first or last address, nor any of `reserved` (the gateway).
   */
  async allocate(
    attachment: Attachment,
    block: ipv4.Cidr,
    reserved: readonly number[],
  ): Promise<{ address: string; fresh: boolean }> {
    // Outside the lock: only this attachment's own calls change its records, and
    // the runtime never runs two at once; the lock covers just the free-address
    // search, which reads names only.
    const k = key(attachment);
    const existing = this.list().find(
      (r) => key(r.attachment) === k && ipv4.contains(block, ipv4.parseAddress(r.address)),
    );
    if (existing) return { address: existing.address, fresh: false };

    return this.locked(() => {
      const taken = new Set(this.names().filter(ipv4.isAddress));
      const first = block.network + 1;
      const count = ipv4.size(block) - 2;
      const cursor = this.cursor();
      const start = cursor !== undefined && ipv4.contains(block, cursor) ? cursor + 1 - first : 0;
      for (let i = 0; i < count; i++) {
        const candidate = first + ((start + i) % count);
        const address = ipv4.formatAddress(candidate);
        if (taken.has(address) || reserved.includes(candidate)) continue;
        if (this.create(address, attachment)) {
          this.setCursor(address);
          return { address, fresh: true };
        }
      }
      throw new CniError(
        CniCode.BlockExhausted,
        "no free address in the node's block",
        `all ${count - reserved.length} addresses of ${ipv4.formatCidr(block)} are allocated (records in ${this.dir}); delete unused pods, or give the network larger node blocks`,
      );
    });
  }

  /** Exclusively creates the record; false when the address is already taken. */
  private create(address: string, attachment: Attachment): boolean {
    const temp = join(this.dir, `.${address}.${uniqueSuffix()}${TEMP_SUFFIX}`);
    writeFileSync(temp, `${JSON.stringify(attachment)}\n`, { flag: "wx", mode: 0o600 });
    try {
      linkSync(temp, join(this.dir, address));
      return true;
    } catch (err) {
      if (errno(err) === "EEXIST") return false;
      throw err;
    } finally {
      unlinkSync(temp);
    }
  }

  private cursor(): number | undefined {
    try {
      const text = readFileSync(join(this.dir, CURSOR), "utf8").trim();
      return ipv4.isAddress(text) ? ipv4.parseAddress(text) : undefined;
    } catch {
      return undefined;
    }
  }

  /** A hint only (losing it merely restarts the round-robin). */
  private setCursor(address: string): void {
    const temp = join(this.dir, `.${CURSOR}.${process.pid}${TEMP_SUFFIX}`);
    writeFileSync(temp, `${address}\n`);
    renameSync(temp, join(this.dir, CURSOR));
  }

  /** Frees every address the attachment holds; returns them. Idempotent. */
  release(attachment: Attachment): Promise<string[]> {
    const k = key(attachment);
    return this.releaseWhere((r) => key(r.attachment) === k);
  }

  /** Frees every address whose attachment is not in `valid`; returns them. */
  async collect(valid: readonly Attachment[]): Promise<string[]> {
    const keep = new Set(valid.map(key));
    const released = await this.releaseWhere((r) => !keep.has(key(r.attachment)));
    this.removeOldTempFiles();
    return released;
  }

  /**
   * Finds the doomed records without the lock, then under it re-reads each
   * before unlinking it, so the lock is held in proportion to what is freed
   * (one record for a DEL), not to how many records the node has.
   */
  private async releaseWhere(predicate: (r: Allocation) => boolean): Promise<string[]> {
    const candidates = this.list().filter(predicate);
    if (candidates.length === 0) return []; // also: never creates the directory of an unused network
    return this.locked(() => {
      const released: string[] = [];
      for (const { address } of candidates) {
        const current = this.read(address);
        if (!current || !predicate(current)) continue;
        unlinkIfPresent(join(this.dir, address));
        released.push(address);
      }
      return released;
    });
  }

  private removeOldTempFiles(): void {
    const now = Date.now();
    for (const name of this.names()) {
      if (!name.endsWith(TEMP_SUFFIX) && !name.startsWith(`${LOCK}.`)) continue;
      const path = join(this.dir, name);
      try {
        if (now - statSync(path).mtimeMs > TEMP_MAX_AGE_MS) unlinkIfPresent(path);
      } catch {
        // removed meanwhile
      }
    }
  }
}

function unlinkIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if (errno(err) !== "ENOENT") throw err;
  }
}
