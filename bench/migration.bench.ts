/**
 * `npm run bench -- migration [--rounds N] [--transfer-mib M] [--fill-mib F]
 * [--write-mib-per-s W] [--pool-mib P]`: what moving a volume between two
 * nodes costs, against yardsticks in the same run, on the migration harness
 * (csi/testing/migration-cluster.ts: its own API server, two simulated nodes
 * with a zfs-fuse pool and a real `skein csi-node` each, the operator).
 *
 * - Transfer throughput: a migration's full-send round (the target agent pulls
 *   the volume from the source agent's transfer endpoint over mutual TLS; timed
 *   from the operator starting the migration to the target reporting the
 *   round) vs a raw local `zfs send | zfs receive` of a snapshot of the same
 *   incompressible data, two processes joined by a pipe, received (like the
 *   migration's copy) under a parent that is neither mounted nor writable.
 *   Both carry the same data, so both rates use the bytes the migration's
 *   round reported. Runs alternate which goes first; the volume goes back
 *   and forth. Verdict: `RATIO transfer_vs_raw_pipe` (Skein's bytes/s over the pipe's).
 * - Downtime: one volume with F MiB of data, published, under a steady write
 *   load. Live: the target pre-copies while the writer writes; once the rounds
 *   are small the writer stops, the volume is unpublished (the pod leaves) and
 *   the cutover moves the last delta. Stop-and-copy: the writer stops, the
 *   volume is unpublished, then a migration copies all of it. Downtime is the
 *   migration's own status.downtimeMilliseconds (source released → target
 *   ready) and, measured here, writer stopped → the Volume Ready on the target;
 *   a stop-and-copy lasts from the writer's stop to Ready on the target.
 *   Runs alternate which goes first and which way the volume moves.
 *   Verdict: `RATIO downtime_vs_stop_and_copy` (status downtime / stop-and-copy).
 *
 * Every live cutover is also laid out step by step, from this process's own
 * watch on the objects and from the agents' and the operator's logs; the
 * median of each step is printed as `RESULT cutover_<step>_ms`.
 *
 * Everything (processes, namespaces, pools, mounts) goes at the end, also on
 * failure and on SIGINT/SIGTERM. SKEIN_KEEP_LOGS=DIR keeps the components' logs.
 */
import { createHash, randomBytes as randomBytesCallback } from "node:crypto";
import { readFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs, promisify } from "node:util";
import { pino } from "pino";
import type { VolumeMigration } from "../api/v1alpha1/index.ts";
import { SMALL_DELTA_BYTES } from "../csi/agent/migration-plan.ts";
import type { ObjectsByKind, SkeinApi, StorageKind } from "../csi/skein-api.ts";
import {
  type MigrationCluster,
  type SimNode,
  startMigrationCluster,
} from "../csi/testing/migration-cluster.ts";
import { volumeKit } from "../csi/testing/volume-kit.ts";
import { INCOMING_PROPERTIES, volumeDataset } from "../csi/zfs/names.ts";
import { pipeCommands } from "../csi/zfs/stream.ts";
import { run } from "../kit/exec.ts";
import type { Informer } from "../kit/k8s/informer.ts";
import type { Logger } from "../kit/log.ts";
import { ensureZfsDaemon } from "../test/fixtures/zfs-daemon.ts";
import { median, ratio, result, timeMs } from "./stats.ts";

const MiB = 1024 * 1024;
const randomBytes = promisify(randomBytesCallback);
/** A full send of a GiB on a busy two-core machine can take minutes. */
const LONG_MS = 15 * 60_000;
/** No change to any watched object for this long means something is stuck. */
const IDLE_MS = 120_000;
/** The writer rewrites this many 1 MiB files in turn, so the volume does not grow with the run. */
const LOAD_FILES = 64;
/** Headroom above the data: the writer's files and ZFS metadata. */
const CAPACITY_HEADROOM_MiB = LOAD_FILES + 192;

function progress(line: string): void {
  process.stderr.write(`migration bench: ${line}\n`);
}

// ---- watching the objects ----

interface Seen<T> {
  /** Date.now() when this process's watch delivered the object (same clock as the components' logs). */
  at: number;
  object: T;
}

/**
 * Every state the API server reports for Volumes and VolumeMigrations, with
 * when this process saw it; waits find the first state that satisfies a
 * predicate after a moment, however late they are asked.
 */
class Watch {
  private readonly history: Array<{ at: number; kind: StorageKind; name: string; object: unknown }> = [];
  private readonly wakers = new Set<() => void>();
  private readonly informers: Informer<ObjectsByKind[StorageKind]>[] = [];

  constructor(
    private readonly api: SkeinApi,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    for (const kind of ["Volume", "VolumeMigration"] as const) {
      const informer = this.api.informer(kind, this.log);
      const record = (object: ObjectsByKind[typeof kind]) => {
        this.history.push({ at: Date.now(), kind, name: object.metadata.name ?? "", object });
        for (const wake of this.wakers) wake();
      };
      informer.on({ add: record, update: (_, o) => record(o) });
      informer.start();
      this.informers.push(informer as Informer<ObjectsByKind[StorageKind]>);
    }
    await Promise.all(this.informers.map((i) => i.waitForSync()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  /**
   * The first state of `kind`/`name` seen at or after `since` that passes
   * `test`. Fails after `timeoutMs`, or sooner when nothing at all has changed
   * for IDLE_MS (a migration under way reports progress every second): then
   * with the unfinished migrations' last status, which says what is stuck.
   */
  async first<K extends StorageKind>(
    kind: K,
    name: string,
    what: string,
    test: (o: ObjectsByKind[K]) => boolean,
    since: number,
    timeoutMs = LONG_MS,
  ): Promise<Seen<ObjectsByKind[K]>> {
    const deadline = Date.now() + timeoutMs;
    let from = 0;
    for (;;) {
      for (; from < this.history.length; from++) {
        const h = this.history[from]!;
        if (h.at >= since && h.kind === kind && h.name === name && test(h.object as ObjectsByKind[K]))
          return { at: h.at, object: h.object as ObjectsByKind[K] };
      }
      const lastChange = this.history.at(-1)?.at ?? since;
      const now = Date.now();
      if (now >= deadline || now - Math.max(lastChange, since) >= IDLE_MS) {
        throw new Error(
          `gave up waiting for ${kind} ${name} (${what}) after ${Math.round((now - since) / 1000)} s, ` +
            `${Math.round((now - lastChange) / 1000)} s without any change; unfinished migrations: ${this.unfinished()}`,
        );
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.wakers.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(
          wake,
          Math.min(deadline - now, IDLE_MS - (now - Math.max(lastChange, since))),
        );
        this.wakers.add(wake);
      });
    }
  }

  private unfinished(): string {
    const latest = new Map<string, unknown>();
    for (const h of this.history) if (h.kind === "VolumeMigration") latest.set(h.name, h.object);
    const open = [...latest.entries()].filter(
      ([, m]) => !["Completed", "Failed", "RolledBack"].includes((m as VolumeMigration).status?.phase ?? ""),
    );
    return open.length === 0
      ? "none"
      : open.map(([n, m]) => `${n} ${JSON.stringify((m as VolumeMigration).status)}`).join("; ");
  }
}

// ---- the pod's side: data, publish, a writer ----

const mountpoint = (node: SimNode, volume: string) => join(node.pool.mountRoot, "skein", volume);

async function createVolume(
  c: MigrationCluster,
  watch: Watch,
  owner: SimNode,
  name: string,
  fillMiB: number,
) {
  const since = Date.now();
  await c.api.create("Volume", {
    metadata: { name },
    spec: { capacityBytes: (fillMiB + CAPACITY_HEADROOM_MiB) * MiB, ownerNode: owner.name },
  });
  await watch.first(
    "Volume",
    name,
    `Ready on ${owner.name}`,
    (v) => v.status?.phase === "Ready" && v.status.node === owner.name,
    since,
    120_000,
  );
  // Incompressible, in files of up to 32 MiB (zfs-fuse has no lz4 anyway).
  const ms = await timeMs(async () => {
    for (let i = 0, left = fillMiB; left > 0; i++, left -= 32)
      await writeFile(
        join(mountpoint(owner, name), `fill-${i}.bin`),
        await randomBytes(Math.min(32, left) * MiB),
      );
  });
  progress(
    `volume ${name}: ${fillMiB} MiB of random data written on ${owner.name} in ${(ms / 1000).toFixed(1)} s`,
  );
}

/** A pod writing steadily: 1 MiB files, rewritten in turn, at a fixed rate; remembers what each holds. */
class Writer {
  readonly sums = new Map<string, string>();
  private stopping = false;
  private written = 0;
  private readonly started = Date.now();
  private readonly loop: Promise<void>;

  constructor(
    private readonly dir: string,
    private readonly mibPerSecond: number,
  ) {
    this.loop = this.write();
  }

  private async write(): Promise<void> {
    const interval = 1000 / this.mibPerSecond;
    let next = Date.now();
    while (!this.stopping) {
      const data = await randomBytes(MiB);
      const file = `load-${this.written % LOAD_FILES}.bin`;
      await writeFile(join(this.dir, file), data);
      this.sums.set(file, createHash("sha256").update(data).digest("hex"));
      this.written += 1;
      next += interval;
      await sleep(Math.max(0, next - Date.now()));
    }
  }

  /** Stops after the write under way; resolves with the moment the last write had landed. */
  async stop(): Promise<number> {
    this.stopping = true;
    await this.loop;
    return Date.now();
  }

  rate(): string {
    return `${this.written} MiB in ${((Date.now() - this.started) / 1000).toFixed(1)} s`;
  }
}

async function checkLoadFiles(node: SimNode, volume: string, sums: Map<string, string>): Promise<void> {
  for (const [file, sum] of sums) {
    const data = await readFile(join(mountpoint(node, volume), file));
    if (createHash("sha256").update(data).digest("hex") !== sum)
      throw new Error(`${file} of volume ${volume} on ${node.name} is not what the writer last wrote`);
  }
}

// ---- migrations ----

async function startMigration(c: MigrationCluster, name: string, volume: string, to: SimNode): Promise<void> {
  await c.api.create("VolumeMigration", {
    metadata: { name },
    spec: { volume, targetNode: to.name, force: false, reason: "benchmark" },
  });
}

/** Completed, the volume Ready on `to`, and the source's copy gone: the next move starts from a clean state. */
async function settle(
  c: MigrationCluster,
  watch: Watch,
  name: string,
  volume: string,
  from: SimNode,
  since: number,
) {
  const done = await watch.first(
    "VolumeMigration",
    name,
    "phase Completed",
    (m) => ["Completed", "Failed", "RolledBack"].includes(m.status?.phase ?? ""),
    since,
  );
  if (done.object.status?.phase !== "Completed")
    throw new Error(
      `migration ${name} ended ${done.object.status?.phase}: ${JSON.stringify(done.object.status)}`,
    );
  // zfs-fuse can call the old copy busy for minutes on a loaded machine: the
  // next move then waits on it (and shows it in its timeline), no reason to fail.
  const deadline = Date.now() + 300_000;
  while (await exists(volumeDataset(from.pool.name, volume))) {
    if (Date.now() > deadline) {
      progress(
        `warning: the source copy of ${volume} on ${from.name} is still there 5 min after the handoff`,
      );
      break;
    }
    await sleep(250);
  }
  await c.api.delete("VolumeMigration", name);
  return done;
}

async function exists(dataset: string): Promise<boolean> {
  return run(["zfs", "list", "-H", "-o", "name", dataset]).then(
    () => true,
    () => false,
  );
}

/** zfs-fuse calls a dataset busy for a while after use: try again for a bit. */
async function destroy(dataset: string, recursive = false): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await run(["zfs", "destroy", ...(recursive ? ["-r"] : []), dataset]);
      return;
    } catch (err) {
      if (attempt >= 20 || !/busy/i.test(String(err))) throw err;
      await sleep(250);
    }
  }
}

// ---- transfer throughput ----

interface TransferSample {
  skeinBytesPerS: number;
  rawBytesPerS: number;
  /** The source's `zfs send` into the TLS connection alone, from its log (NaN when not found). */
  streamBytesPerS: number;
}

async function transferRound(
  c: MigrationCluster,
  watch: Watch,
  volume: string,
  from: SimNode,
  to: SimNode,
  index: number,
  skeinFirst: boolean,
): Promise<TransferSample> {
  let bytes = 0;
  let skeinMs = 0;
  let rawMs = 0;
  let stream: { ms: number; startMs: number; endMs: number } | undefined;
  const viaSkein = async () => {
    const name = `xfer-${index}`;
    const since = Date.now();
    await startMigration(c, name, volume, to);
    const started = await watch.first(
      "VolumeMigration",
      name,
      "Replicating",
      (m) => !!m.status?.sourceNode,
      since,
    );
    const full = await watch.first(
      "VolumeMigration",
      name,
      "round 1",
      (m) => (m.status?.round ?? 0) >= 1,
      since,
    );
    bytes = full.object.status?.lastRoundBytes ?? 0;
    skeinMs = full.at - started.at;
    const sent = readLogs(c, since).find(
      (l) => l.msg === "sent snapshot" && l.fields.volume === volume && l.fields.from === undefined,
    );
    if (sent) {
      const ms = Number(sent.fields.ms);
      stream = { ms, startMs: sent.at - ms - started.at, endMs: full.at - sent.at };
    }
    await settle(c, watch, name, volume, from, since);
  };
  const viaPipe = async () => {
    // Of the data as it is now, wherever the volume is now: the same bytes either way.
    const holder = skeinFirst ? to : from;
    const other = skeinFirst ? from : to;
    const snapshot = `${volumeDataset(holder.pool.name, volume)}@bench-raw`;
    const copy = `${rawRoot(other)}/copy`;
    await run(["zfs", "snapshot", snapshot]);
    try {
      rawMs = await timeMs(() =>
        pipeCommands(["zfs", "send", snapshot], ["zfs", "receive", copy], { timeoutMs: LONG_MS }),
      );
    } finally {
      await destroy(copy, true).catch(() => undefined);
      await destroy(snapshot);
    }
  };
  for (const step of skeinFirst ? [viaSkein, viaPipe] : [viaPipe, viaSkein]) await step();
  if (bytes <= 0) throw new Error(`migration round 1 of ${volume} reported no bytes`);
  const sample = {
    skeinBytesPerS: bytes / (skeinMs / 1000),
    rawBytesPerS: bytes / (rawMs / 1000),
    streamBytesPerS: stream ? bytes / (stream.ms / 1000) : Number.NaN,
  };
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  progress(
    `transfer ${index + 1}: ${(bytes / MiB).toFixed(0)} MiB ${from.name}→${to.name}: Skein ${(sample.skeinBytesPerS / MiB).toFixed(1)} MiB/s (${s(skeinMs)}` +
      `${stream ? `: ${s(stream.startMs)} to the send, ${s(stream.ms)} streaming, ${s(stream.endMs)} to the status` : ""}), ` +
      `zfs send | zfs receive ${(sample.rawBytesPerS / MiB).toFixed(1)} MiB/s (${s(rawMs)})`,
  );
  return sample;
}

/** Where the raw pipe receives on a node: like the migration's incoming parent, not mounted and read-only. */
const rawRoot = (node: SimNode) => `${node.pool.name}/bench-raw`;

// ---- downtime ----

/** When each point of a live cutover happened (Date.now() ms); absent when not seen. */
interface CutoverPoints {
  writerStopped: number;
  unpublished: number;
  released: number;
  finalSendStart?: number;
  finalSendEnd?: number;
  targetReady: number;
  ownerMoved: number;
  readyOnTarget: number;
  completed: number;
}

/** The steps of a cutover, in order: each from one point to the next that was seen. */
const STEPS: Array<{ name: string; from: keyof CutoverPoints; to: keyof CutoverPoints; what: string }> = [
  {
    name: "unpublish",
    from: "writerStopped",
    to: "unpublished",
    what: "writer stopped → NodeUnpublishVolume returned",
  },
  {
    name: "source_release",
    from: "unpublished",
    to: "released",
    what: "→ source released (mounts checked, read-only, final snapshot, status written, seen)",
  },
  {
    name: "target_notices",
    from: "released",
    to: "finalSendStart",
    what: "→ final send starts (target informer, snapshot lists, TLS, holds)",
  },
  { name: "final_send", from: "finalSendStart", to: "finalSendEnd", what: "→ final increment streamed" },
  {
    name: "target_finish",
    from: "finalSendEnd",
    to: "targetReady",
    what: "→ targetReadyTime seen (receive end, GUID, prune, properties, rename, tags, status)",
  },
  { name: "owner_move", from: "targetReady", to: "ownerMoved", what: "→ ownerNode moved (operator)" },
  {
    name: "target_ready",
    from: "ownerMoved",
    to: "readyOnTarget",
    what: "→ Volume Ready on the target (target agent: writable, status)",
  },
  { name: "complete", from: "readyOnTarget", to: "completed", what: "→ migration Completed (operator)" },
];

/** Each step's duration: from the last point seen before it, so a point not seen folds into the next step. */
function stepDurations(p: CutoverPoints): Map<string, number> {
  const out = new Map<string, number>();
  let last = p.writerStopped;
  for (const step of STEPS) {
    const at = p[step.to];
    if (at === undefined) continue;
    out.set(step.name, at - last);
    last = at;
  }
  return out;
}

interface LogLine {
  at: number;
  source: string;
  msg: string;
  fields: Record<string, unknown>;
}

function readLogs(c: MigrationCluster, since: number): LogLine[] {
  const lines: LogLine[] = [];
  for (const source of ["operator", ...c.nodes.map((n) => n.name)]) {
    let text = "";
    try {
      text = readFileSync(join(c.dir, `${source}.log`), "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n")) {
      if (!line.startsWith("{")) continue;
      let fields: Record<string, unknown>;
      try {
        fields = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      const at = Date.parse(String(fields.time));
      if (at >= since) lines.push({ at, source, msg: String(fields.msg), fields });
    }
  }
  return lines.sort((a, b) => a.at - b.at);
}

/** The log lines that belong to one migration of one volume, for the timeline. */
function cutoverLog(lines: LogLine[], migration: string, volume: string): LogLine[] {
  return lines.filter((l) => l.fields.migration === migration || l.fields.volume === volume);
}

interface DowntimeSample {
  statusMs: number;
  measuredMs: number;
  steps?: Map<string, number>;
}

/** One move of the benchmark's volume, under a steady writer. */
interface Move {
  c: MigrationCluster;
  watch: Watch;
  volume: string;
  from: SimNode;
  to: SimNode;
  index: number;
  mibPerSecond: number;
}

async function liveMigration(move: Move): Promise<DowntimeSample> {
  const { c, watch, volume, from, to, index, mibPerSecond } = move;
  const name = `live-${index}`;
  const kit = volumeKit(() => c, "bench");
  const target = await kit.publish(from, volume);
  const writer = new Writer(target, mibPerSecond);
  try {
    await sleep(3_000);
    const since = Date.now();
    await startMigration(c, name, volume, to);
    const close = await watch.first(
      "VolumeMigration",
      name,
      "pre-copy close behind (round ≥ 3, last round small)",
      (m) =>
        (m.status?.round ?? 0) >= 3 &&
        (m.status?.lastRoundBytes ?? Number.POSITIVE_INFINITY) <= SMALL_DELTA_BYTES,
      since,
    );
    progress(
      `live ${index + 1}: pre-copy close behind after ${((close.at - since) / 1000).toFixed(1)} s, round ${close.object.status?.round}, ` +
        `${((close.object.status?.bytesSent ?? 0) / MiB).toFixed(0)} MiB sent; writer ${writer.rate()}`,
    );
    const writerStopped = await writer.stop();
    await kit.unpublish(from, volume, target);
    const unpublished = Date.now();
    const m = (what: string, test: (x: ObjectsByKind["VolumeMigration"]) => boolean) =>
      watch.first("VolumeMigration", name, what, test, since).then((s) => s.at);
    const v = (what: string, test: (x: ObjectsByKind["Volume"]) => boolean) =>
      watch.first("Volume", volume, what, test, writerStopped).then((s) => s.at);
    const points: CutoverPoints = {
      writerStopped,
      unpublished,
      released: await m("released", (x) => !!x.status?.finalSnapshot),
      targetReady: await m("target ready", (x) => !!x.status?.targetReadyTime),
      ownerMoved: await v(`owned by ${to.name}`, (x) => x.spec.ownerNode === to.name),
      readyOnTarget: await v(
        `Ready on ${to.name}`,
        (x) => x.status?.node === to.name && x.status.phase === "Ready",
      ),
      completed: await m("Completed", (x) => x.status?.phase === "Completed"),
    };
    const done = await settle(c, watch, name, volume, from, since);
    await checkLoadFiles(to, volume, writer.sums);
    const log = cutoverLog(readLogs(c, writerStopped - 1_000), name, volume);
    const final = done.object.status?.finalSnapshot ?? "";
    const sent = log.find(
      (l) => l.msg === "sent snapshot" && String(l.fields.snapshot).endsWith(`@${final}`),
    );
    if (sent) {
      points.finalSendEnd = sent.at;
      points.finalSendStart = sent.at - Number(sent.fields.ms);
    }
    printTimeline(index, points, log);
    const statusMs = done.object.status?.downtimeMilliseconds ?? Number.NaN;
    const measuredMs = points.readyOnTarget - writerStopped;
    progress(
      `live ${index + 1}: ${from.name}→${to.name}: downtime ${statusMs} ms (status), ${measuredMs} ms (writer stopped → Ready on ${to.name})`,
    );
    return { statusMs, measuredMs, steps: stepDurations(points) };
  } finally {
    await writer.stop().catch(() => undefined);
  }
}

function printTimeline(index: number, p: CutoverPoints, log: LogLine[]): void {
  const t0 = p.writerStopped;
  const rel = (at: number) => `+${String(at - t0).padStart(6)} ms`;
  progress(
    `live ${index + 1}: cutover timeline (from the writer's stop; this process's watch, then the logs):`,
  );
  let last = t0;
  for (const step of STEPS) {
    const at = p[step.to];
    if (at === undefined) continue;
    progress(`  ${rel(at)}  (${String(at - last).padStart(5)} ms)  ${step.what}`);
    last = at;
  }
  for (const l of log) {
    const detail = ["phase", "snapshot", "bytes", "ms", "from", "to"]
      .filter((k) => l.fields[k] !== undefined)
      .map((k) => `${k}=${String(l.fields[k])}`)
      .join(" ");
    progress(`  ${rel(l.at)}  ${l.source}: ${l.msg}${detail ? ` (${detail})` : ""}`);
  }
}

async function stopAndCopy(move: Move, loadMs: number): Promise<number> {
  const { c, watch, volume, from, to, index, mibPerSecond } = move;
  const name = `stop-copy-${index}`;
  const kit = volumeKit(() => c, "bench");
  const target = await kit.publish(from, volume);
  const writer = new Writer(target, mibPerSecond);
  let writerStopped: number;
  try {
    await sleep(loadMs);
  } finally {
    writerStopped = await writer.stop();
  }
  await kit.unpublish(from, volume, target);
  const since = Date.now();
  await startMigration(c, name, volume, to);
  const ready = await watch.first(
    "Volume",
    volume,
    `Ready on ${to.name}`,
    (v) => v.status?.node === to.name && v.status.phase === "Ready",
    since,
  );
  await settle(c, watch, name, volume, from, since);
  await checkLoadFiles(to, volume, writer.sums);
  const ms = ready.at - writerStopped;
  progress(
    `stop-and-copy ${index + 1}: ${from.name}→${to.name}: ${ms} ms from the writer's stop to Ready on ${to.name}`,
  );
  return ms;
}

// ---- the run ----

function positive(values: Record<string, string | boolean | undefined>, name: string, min = 1): number {
  const value = Number(values[name]);
  if (!(Number.isInteger(value) && value >= min)) throw new Error(`--${name} must be an integer ≥ ${min}`);
  return value;
}

export default async function migrationBench(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      rounds: { type: "string", default: "3" },
      "transfer-mib": { type: "string", default: "512" },
      "fill-mib": { type: "string", default: "1024" },
      "write-mib-per-s": { type: "string", default: "4" },
      "pool-mib": { type: "string" },
    },
  });
  const rounds = positive(values, "rounds");
  const transferMiB = positive(values, "transfer-mib", 64);
  const fillMiB = positive(values, "fill-mib", 64);
  const mibPerSecond = positive(values, "write-mib-per-s");
  // A thick volume (refreservation = capacity) can be snapshotted only while
  // the pool has room for its referenced data besides the reservation, so a
  // pool takes twice the largest capacity, plus zfs-fuse's own metadata.
  const poolMiB =
    values["pool-mib"] === undefined
      ? 2 * (Math.max(fillMiB, transferMiB) + CAPACITY_HEADROOM_MiB) + 512
      : positive(values, "pool-mib", 256);

  let cleanup: Promise<void> | undefined;
  const parts: { stopZfs?: () => Promise<void>; cluster?: MigrationCluster; watch?: Watch } = {};
  const cleanUp = () => {
    cleanup ??= (async () => {
      await parts.watch?.stop().catch(() => undefined);
      if (parts.cluster) {
        progress("stopping the cluster and destroying the pools");
        await parts.cluster.stop();
      }
      await parts.stopZfs?.();
    })();
    return cleanup;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    progress(`${signal}: cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    parts.stopZfs = await ensureZfsDaemon();
    progress(`starting two nodes with ${poolMiB} MiB pools, their agents, the operator and an API server`);
    const c = await startMigrationCluster({ nodes: 2, poolMiB });
    parts.cluster = c;
    const [a, b] = c.nodes as [SimNode, SimNode];
    for (const n of [a, b]) {
      const props = Object.entries(INCOMING_PROPERTIES).flatMap(([k, value]) => ["-o", `${k}=${value}`]);
      await run(["zfs", "create", ...props, rawRoot(n)]);
    }
    const log = pino({ base: { component: "migration-bench" }, level: "warn" }, pino.destination(2));
    const watch = new Watch(c.api, log);
    parts.watch = watch;
    await watch.start();

    // Transfer throughput.
    const transfer: TransferSample[] = [];
    await createVolume(c, watch, a, "bench-xfer", transferMiB);
    for (let i = 0; i < rounds; i++) {
      const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
      transfer.push(await transferRound(c, watch, "bench-xfer", from, to, i, i % 2 === 1));
    }
    await deleteVolume(c, "bench-xfer");

    // Downtime.
    await createVolume(c, watch, a, "bench-live", fillMiB);
    const live: DowntimeSample[] = [];
    const stopCopy: number[] = [];
    let on = a;
    for (let i = 0; i < rounds; i++) {
      const order = i % 2 === 0 ? (["live", "stop"] as const) : (["stop", "live"] as const);
      for (const which of order) {
        const other = on === a ? b : a;
        if (which === "live")
          live.push(
            await liveMigration({
              c,
              watch,
              volume: "bench-live",
              from: on,
              to: other,
              index: i,
              mibPerSecond,
            }),
          );
        else
          stopCopy.push(
            await stopAndCopy(
              { c, watch, volume: "bench-live", from: on, to: other, index: i, mibPerSecond },
              5_000,
            ),
          );
        on = other;
      }
    }

    const skein = median(transfer.map((t) => t.skeinBytesPerS));
    const raw = median(transfer.map((t) => t.rawBytesPerS));
    console.log(
      `transfer, ${rounds} runs of ${transferMiB} MiB: Skein median ${(skein / MiB).toFixed(1)} MiB/s, ` +
        `zfs send | zfs receive median ${(raw / MiB).toFixed(1)} MiB/s`,
    );
    const statusMs = median(live.map((l) => l.statusMs));
    const measuredMs = median(live.map((l) => l.measuredMs));
    const stopMs = median(stopCopy);
    console.log(
      `downtime, ${rounds} runs each, ${fillMiB} MiB volume, writer at ${mibPerSecond} MiB/s: live ${statusMs} ms (status), ` +
        `${measuredMs} ms (writer stopped → Ready); stop-and-copy ${stopMs} ms`,
    );
    console.log("live cutover, median of each step:");
    for (const step of STEPS) {
      const samples = live.flatMap((l) => (l.steps?.has(step.name) ? [l.steps.get(step.name)!] : []));
      if (samples.length === 0) continue;
      console.log(`  ${String(median(samples)).padStart(6)} ms  ${step.what}`);
    }
    for (const step of STEPS) {
      const samples = live.flatMap((l) => (l.steps?.has(step.name) ? [l.steps.get(step.name)!] : []));
      if (samples.length > 0) result(`cutover_${step.name}_ms`, median(samples));
    }
    result("transfer_skein_mib_per_s", skein / MiB);
    result("transfer_raw_pipe_mib_per_s", raw / MiB);
    const streams = transfer.map((t) => t.streamBytesPerS).filter((x) => !Number.isNaN(x));
    if (streams.length > 0) result("transfer_skein_stream_only_mib_per_s", median(streams) / MiB);
    result("downtime_status_ms", statusMs);
    result("downtime_measured_ms", measuredMs);
    result("stop_and_copy_ms", stopMs);
    ratio("transfer_vs_raw_pipe", skein / raw);
    ratio("downtime_measured_vs_stop_and_copy", measuredMs / stopMs);
    ratio("downtime_vs_stop_and_copy", statusMs / stopMs);
  } finally {
    await cleanUp();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

async function deleteVolume(c: MigrationCluster, name: string): Promise<void> {
  await c.api.delete("Volume", name);
  const deadline = Date.now() + 120_000;
  while (await c.api.get("Volume", name)) {
    if (Date.now() > deadline) throw new Error(`volume ${name} was not deleted within 2 min`);
    await sleep(250);
  }
}
