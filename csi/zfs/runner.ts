/**
 * The thin shell around commands.ts: runs each argv with kit/exec.ts, reads
 * `-H -p` output into typed records, and turns failures into ZfsErrors with a
 * stable code (errors.ts). It decides nothing; callers do.
 */
import { type Argv, run } from "../../kit/exec.ts";
import { detectCapabilities, type ZfsCapabilities } from "./capabilities.ts";
import {
  type CreateOptions,
  cloneArgs,
  createArgs,
  type DestroyOptions,
  destroyArgs,
  type GetOptions,
  getArgs,
  holdArgs,
  holdsArgs,
  inheritArgs,
  type ListOptions,
  listArgs,
  mountArgs,
  type Properties,
  type ReceiveOptions,
  receiveArgs,
  releaseArgs,
  renameArgs,
  rollbackArgs,
  type SendOptions,
  type SnapshotOptions,
  sendArgs,
  setArgs,
  snapshotArgs,
  unmountArgs,
  ZPOOL_COLUMNS,
  zpoolListArgs,
} from "./commands.ts";
import { toZfsError, ZfsError } from "./errors.ts";
import { skeinRoot, USER_PROPERTY_PREFIX, volumeOfDataset } from "./names.ts";
import {
  groupByName,
  type HoldRow,
  isSet,
  type PropertyRow,
  parseBytes,
  parseGetOutput,
  parseHoldsOutput,
  parseHumanSize,
  parseListOutput,
} from "./parse.ts";
import { pipeCommands } from "./stream.ts";

export interface ZfsOptions {
  capabilities: ZfsCapabilities;
  /** Per command; `zfs` calls on a loaded pool can take seconds. Default 60 s. */
  timeoutMs?: number;
}

/** Space a dataset uses and may still use, in bytes. */
export interface DatasetSpace {
  used: number;
  referenced: number;
  available: number;
  /** undefined when the dataset has no refquota. */
  refquota: number | undefined;
}

export interface PoolSpace {
  name: string;
  size: number;
  allocated: number;
  free: number;
  health: string;
  /** What datasets may still use: `free` minus ZFS's reserved slop space. */
  available: number;
  /** false when `zpool list` printed rounded sizes (`1.5G`) because this ZFS has no `-p`. */
  exact: boolean;
}

/** A Skein volume's dataset as found on a pool, with the `skein.io:` properties it carries. */
export interface ManagedDataset {
  dataset: string;
  volume: string;
  userProperties: Record<string, string>;
}

const DEFAULT_TIMEOUT_MS = 60_000;

export class Zfs {
  readonly capabilities: ZfsCapabilities;
  private readonly timeoutMs: number;

  constructor(options: ZfsOptions) {
    this.capabilities = options.capabilities;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Probes this machine's ZFS once and returns a runner for it. */
  static async detect(options: Omit<ZfsOptions, "capabilities"> = {}): Promise<Zfs> {
    return new Zfs({ ...options, capabilities: await detectCapabilities() });
  }

  /** Runs one argv; stdout on success, a ZfsError on failure. */
  async exec(argv: Argv): Promise<string> {
    try {
      return (await run(argv, { timeoutMs: this.timeoutMs })).stdout;
    } catch (err) {
      throw toZfsError(err);
    }
  }

  async create(dataset: string, options?: CreateOptions): Promise<void> {
    await this.exec(createArgs(dataset, options));
  }

  async destroy(name: string, options?: DestroyOptions): Promise<void> {
    await this.exec(destroyArgs(name, options));
  }

  async snapshot(snapshot: string, options?: SnapshotOptions): Promise<void> {
    await this.exec(snapshotArgs(snapshot, options));
  }

  async clone(snapshot: string, dataset: string, options?: CreateOptions): Promise<void> {
    await this.exec(cloneArgs(snapshot, dataset, options));
  }

  async mount(dataset: string): Promise<void> {
    await this.exec(mountArgs(dataset));
  }

  async unmount(dataset: string, options?: { force?: boolean }): Promise<void> {
    await this.exec(unmountArgs(dataset, options));
  }

  async rollback(snapshot: string, options?: { destroyNewer?: boolean }): Promise<void> {
    await this.exec(rollbackArgs(snapshot, options));
  }

  async rename(from: string, to: string, options?: { parents?: boolean }): Promise<void> {
    await this.exec(renameArgs(from, to, options));
  }

  /** Sets each property in turn (zfs-fuse's `set` takes one at a time). */
  async set(name: string, properties: Properties): Promise<void> {
    for (const [property, value] of Object.entries(properties))
      await this.exec(setArgs(name, property, value));
  }

  async inherit(name: string, property: string, options?: { recursive?: boolean }): Promise<void> {
    await this.exec(inheritArgs(name, property, options));
  }

  async get(
    names: readonly string[],
    properties: readonly string[],
    options?: GetOptions,
  ): Promise<PropertyRow[]> {
    return parseGetOutput(await this.exec(getArgs(names, properties, options)));
  }

  /** The named properties of one dataset or snapshot, by property name. */
  async properties(name: string, properties: readonly string[]): Promise<Map<string, PropertyRow>> {
    return groupByName(await this.get([name], properties)).get(name) ?? new Map();
  }

  /** Whether a dataset or snapshot exists. */
  async exists(name: string): Promise<boolean> {
    try {
      await this.get([name], ["type"]);
      return true;
    } catch (err) {
      if (err instanceof ZfsError && err.code === "ZfsNotFound") return false;
      throw err;
    }
  }

  async list<C extends string = "name">(
    roots: readonly string[],
    options: ListOptions & { columns?: readonly C[] } = {},
  ): Promise<Record<C, string>[]> {
    const columns = (options.columns ?? ["name"]) as readonly C[];
    return parseListOutput(await this.exec(listArgs(roots, { ...options, columns })), columns);
  }

  /** Snapshot names of `dataset`, oldest first (the order `zfs list` walks them in). */
  async snapshots(dataset: string): Promise<string[]> {
    const rows = await this.list([dataset], { types: ["snapshot"], depth: 1 });
    return rows.map((r) => r.name);
  }

  async space(dataset: string): Promise<DatasetSpace> {
    const props = await this.properties(dataset, ["used", "referenced", "available", "refquota"]);
    const number = (p: string): number => {
      const v = parseBytes(props.get(p)?.value ?? "-");
      if (v === undefined) throw new ZfsError("ZfsFailed", `zfs get printed no ${p} for ${dataset}`);
      return v;
    };
    const refquota = parseBytes(props.get("refquota")?.value ?? "-");
    return {
      used: number("used"),
      referenced: number("referenced"),
      available: number("available"),
      refquota: refquota === 0 ? undefined : refquota,
    };
  }

  async poolSpace(pool: string): Promise<PoolSpace> {
    const [row] = parseListOutput(await this.exec(zpoolListArgs([pool], this.capabilities)), ZPOOL_COLUMNS);
    if (!row) throw new ZfsError("ZfsNotFound", `zpool list printed nothing for pool ${pool}`);
    const exact = this.capabilities.parsableZpoolList;
    const size = (v: string): number => (exact ? parseBytes(v) : parseHumanSize(v)) ?? 0;
    const available = parseBytes((await this.properties(pool, ["available"])).get("available")?.value ?? "-");
    return {
      name: row.name,
      size: size(row.size),
      allocated: size(row.allocated),
      free: size(row.free),
      health: row.health,
      available: available ?? 0,
      exact,
    };
  }

  /**
   * Every volume dataset under `<pool>/skein` with its `skein.io:` properties,
   * whether or not any Volume object still names it: callers compare with the
   * API to find orphans. An absent `<pool>/skein` means no volumes.
   */
  async managedDatasets(pool: string): Promise<ManagedDataset[]> {
    let rows: PropertyRow[];
    try {
      rows = await this.get([skeinRoot(pool)], ["all"], { depth: 1 });
    } catch (err) {
      if (err instanceof ZfsError && err.code === "ZfsNotFound") return [];
      throw err;
    }
    const found: ManagedDataset[] = [];
    for (const [dataset, props] of groupByName(rows)) {
      const volume = volumeOfDataset(pool, dataset);
      if (volume === undefined) continue;
      const userProperties: Record<string, string> = {};
      for (const row of props.values()) {
        if (row.property.startsWith(USER_PROPERTY_PREFIX) && isSet(row))
          userProperties[row.property] = row.value;
      }
      found.push({ dataset, volume, userProperties });
    }
    return found.sort((a, b) => a.dataset.localeCompare(b.dataset));
  }

  async hold(tag: string, snapshots: readonly string[], options?: { recursive?: boolean }): Promise<void> {
    await this.exec(holdArgs(tag, snapshots, options));
  }

  async release(tag: string, snapshots: readonly string[], options?: { recursive?: boolean }): Promise<void> {
    await this.exec(releaseArgs(tag, snapshots, options));
  }

  /** Hold tags per snapshot; needs capabilities.listHolds (else see holdCount). */
  async holds(snapshots: readonly string[]): Promise<HoldRow[]> {
    return parseHoldsOutput(await this.exec(holdsArgs(snapshots, this.capabilities)));
  }

  /** How many holds a snapshot has (`userrefs`), on every ZFS. */
  async holdCount(snapshot: string): Promise<number> {
    return parseBytes((await this.properties(snapshot, ["userrefs"])).get("userrefs")?.value ?? "0") ?? 0;
  }

  /**
   * `zfs send … | zfs receive …` on this machine (between pools, or into a new
   * dataset); across nodes the transfer endpoint carries the stream instead.
   */
  async sendReceive(
    snapshot: string,
    send: SendOptions,
    dataset: string,
    receive: ReceiveOptions,
  ): Promise<void> {
    const source = sendArgs(snapshot, send, this.capabilities);
    const sink = receiveArgs(dataset, receive, this.capabilities);
    try {
      await pipeCommands(source, sink, { timeoutMs: this.timeoutMs });
    } catch (err) {
      throw toZfsError(err);
    }
  }
}
