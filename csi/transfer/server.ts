/**
 * The transfer endpoint every node agent runs: it streams `zfs send` of its
 * volumes to peers that prove, by a certificate the cluster CA signed, that
 * they are Skein nodes. Snapshots are held (`zfs hold`) for as long as they are
 * being sent, so a concurrent prune cannot pull them from under the stream.
 */
import { spawn } from "node:child_process";
import type { AddressInfo } from "node:net";
import { pipeline } from "node:stream/promises";
import { createServer, type TLSSocket, type Server as TlsServer } from "node:tls";
import { describeError } from "../../kit/errors.ts";
import { createLogger, type Logger } from "../../kit/log.ts";
import { nodeOfPeer } from "../../kit/pki.ts";
import { sendArgs } from "../zfs/commands.ts";
import { ZfsError } from "../zfs/errors.ts";
import { skeinRoot, volumeDataset } from "../zfs/names.ts";
import type { Zfs } from "../zfs/runner.ts";
import { readHeaderLine } from "./header.ts";
import {
  MAX_HEADER_BYTES,
  parseRequest,
  type Request,
  type Response,
  type SnapshotInfo,
} from "./protocol.ts";
import { SendLedger, temporarySendTag } from "./send-ledger.ts";
import { STALL_TIMEOUT_MS, watchForStall } from "./stall.ts";

export interface TransferTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export interface TransferServerOptions {
  pool: string;
  zfs: Zfs;
  tls: TransferTls;
  host: string;
  /** 0 picks a free port. */
  port: number;
  logger?: Logger;
  headerTimeoutMs?: number;
  /** A send that moves no byte for this long is aborted (a cut link, a peer that stopped reading). */
  stallTimeoutMs?: number;
  /**
   * A file that outlives this process, where the sends under way are written
   * down (see SendLedger): without it, holds that zfs-fuse leaks when a send is
   * killed keep their snapshots until the pool is re-imported.
   */
  ledgerPath?: string;
  /**
   * Whether the authenticated `peer` may have what it asks for: undefined to
   * allow, else why not (the peer is told). The node agent allows only the
   * target of a migration of that volume away from this node. Default: allow.
   */
  authorize?: (peer: string, request: Request) => string | undefined;
  /**
   * For a send with `waitMs`: resolves to the snapshot's GUID once the node
   * agent vouches for `volume@snapshot` (at once if it does), or undefined
   * after `ms` without. The agent vouches for a cutover's final snapshot once
   * the release is recorded, and keeps it and its base until the migration
   * ends, so such a send places no holds and looks nothing up: the cutover's
   * downtime waits for no command before the stream. Without this option,
   * such a send waits for nothing.
   */
  awaitSnapshot?: (volume: string, snapshot: string, ms: number) => Promise<string | undefined>;
}

/**
 * Snapshots being sent are held under tags from this fixed set (the first
 * free one), not random ones: zfs-fuse cannot list a snapshot's tags, so only
 * known names let a restarted agent drop what a killed one still held.
 */
const HOLD_TAGS = Array.from({ length: 16 }, (_, i) => `skein-send-${i}`);

export class TransferServer {
  private readonly server: TlsServer;
  private readonly log: Logger;
  private readonly sockets = new Set<TLSSocket>();
  private readonly ledger: SendLedger | undefined;

  constructor(private readonly options: TransferServerOptions) {
    this.log = options.logger ?? createLogger("transfer-server");
    this.ledger = options.ledgerPath === undefined ? undefined : new SendLedger(options.ledgerPath);
    this.server = createServer({
      ca: options.tls.caPem,
      cert: options.tls.certPem,
      key: options.tls.keyPem,
      requestCert: true,
      // Only peers with a certificate from the cluster CA get past the handshake.
      rejectUnauthorized: true,
      minVersion: "TLSv1.3",
      // AES-128 first: as safe for this, and faster than AES-256, on the one stream a volume moves by.
      ciphers: "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
      honorCipherOrder: true,
    });
    this.server.on("secureConnection", (socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
      this.serve(socket).catch(async (err: unknown) => {
        this.log.warn({ err: describeError(err) }, "transfer connection failed");
        // Failed before the stream began (say, no room for the round's snapshot): the peer
        // is told why, rather than finding the connection closed.
        if (!answered.has(socket))
          await reply(socket, { ok: false, code: "Failed", message: describeError(err) }).catch(
            () => undefined,
          );
        socket.destroy();
      });
    });
    this.server.on("tlsClientError", (err) =>
      this.log.warn({ err: err.message }, "refused a peer at the TLS handshake"),
    );
  }

  async start(): Promise<number> {
    await this.releaseStaleHolds();
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.options.port, this.options.host, () => resolve());
    });
    const { port } = this.server.address() as AddressInfo;
    this.log.info({ host: this.options.host, port }, "transfer endpoint listening");
    return port;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /**
   * Holds a killed earlier run left: its own tags, and the temporary ones of
   * the sends it had under way (no send is under way before the endpoint listens).
   */
  private async releaseStaleHolds(): Promise<void> {
    const zfs = this.options.zfs;
    const root = skeinRoot(this.options.pool);
    const tags = [...HOLD_TAGS, ...(this.ledger?.leftover() ?? []).map(temporarySendTag)];
    if (await zfs.exists(root)) {
      const rows = await zfs.list([root], {
        types: ["snapshot"],
        columns: ["name", "userrefs"],
        recursive: true,
      });
      for (const { name } of rows.filter((r) => r.userrefs !== "0")) {
        for (const tag of tags) await zfs.release(tag, [name]).catch(() => undefined);
        this.log.info({ snapshot: name }, "released the send holds a stopped agent left");
      }
    }
    this.ledger?.reset();
  }

  private async serve(socket: TLSSocket): Promise<void> {
    const peer = nodeOfPeer(socket.getPeerCertificate());
    if (!peer) {
      await reply(socket, { ok: false, code: "BadRequest", message: "peer certificate names no node" });
      return;
    }
    const { line } = await readHeaderLine(socket, MAX_HEADER_BYTES, this.options.headerTimeoutMs ?? 10_000);
    let request: Request;
    try {
      request = parseRequest(line);
    } catch (err) {
      await reply(socket, { ok: false, code: "BadRequest", message: describeError(err) });
      return;
    }
    const log = this.log.child({ peer, op: request.op, volume: request.volume });
    const denied = this.options.authorize?.(peer, request);
    if (denied !== undefined) {
      log.warn({ why: denied }, "refused a transfer request");
      await reply(socket, { ok: false, code: "Forbidden", message: denied });
      return;
    }
    const dataset = volumeDataset(this.options.pool, request.volume);
    if (!(await this.options.zfs.exists(dataset))) {
      await reply(socket, {
        ok: false,
        code: "NotFound",
        message: `volume ${request.volume} has no dataset on this node`,
      });
      return;
    }
    if (request.op === "snapshots") {
      await reply(socket, { ok: true, op: "snapshots", snapshots: await this.snapshotInfo(dataset) });
      socket.end();
      return;
    }
    if (request.op === "round") {
      const snapshot = `${dataset}@${request.snapshot}`;
      // A retried round reuses the snapshot its first attempt made.
      if (!(await this.options.zfs.exists(snapshot))) await this.options.zfs.snapshot(snapshot);
      await this.send(
        socket,
        dataset,
        {
          v: 1,
          op: "send",
          volume: request.volume,
          snapshot: request.snapshot,
          from: request.from,
          intermediates: request.from !== undefined,
        },
        log,
      );
      await this.pruneSeries(dataset, request, log);
      return;
    }
    await this.send(socket, dataset, request, log);
  }

  /**
   * After a round, the puller needs nothing of the series (the name up to its
   * last "-") older than the round's base: those snapshots go, unless held.
   * Newer ones stay (a final snapshot the source took meanwhile, say).
   */
  private async pruneSeries(dataset: string, request: Extract<Request, { op: "round" }>, log: Logger) {
    if (request.from === undefined) return;
    const series = `${dataset}@${request.snapshot.slice(0, request.snapshot.lastIndexOf("-") + 1)}`;
    const zfs = this.options.zfs;
    // Oldest first: everything before the base is older than it.
    const all = await zfs.snapshots(dataset);
    const base = all.indexOf(`${dataset}@${request.from}`);
    for (const s of all.slice(0, Math.max(0, base))) {
      if (!s.startsWith(series)) continue;
      if ((await zfs.holdCount(s)) > 0) continue;
      await zfs
        .destroy(s)
        .catch((err: unknown) => log.warn({ snapshot: s, err: describeError(err) }, "could not prune"));
    }
  }

  private async snapshotInfo(dataset: string): Promise<SnapshotInfo[]> {
    const names = await this.options.zfs.snapshots(dataset);
    if (names.length === 0) return [];
    const rows = await this.options.zfs.get(names, ["guid"]);
    const guid = new Map(rows.map((r) => [r.name, r.value]));
    return names.map((n) => ({ name: n.slice(n.indexOf("@") + 1), guid: guid.get(n) ?? "" }));
  }

  private async send(
    socket: TLSSocket,
    dataset: string,
    request: Extract<Request, { op: "send" }>,
    log: Logger,
  ) {
    const zfs = this.options.zfs;
    const snapshot = `${dataset}@${request.snapshot}`;
    const from = request.from === undefined ? undefined : `${dataset}@${request.from}`;
    const holds: Array<[tag: string, snapshot: string]> = [];
    try {
      const guid = await this.readyToSend(socket, request, snapshot, from, holds);
      if (guid === undefined) return;
      await reply(socket, { ok: true, op: "send", guid });
      // Spawned only now: a child's output nobody listens to yet is dropped when it exits.
      const argv = sendArgs(snapshot, { from, intermediates: request.intermediates }, zfs.capabilities);
      const [program, ...args] = argv;
      const started = Date.now();
      const child = spawn(program, args, { stdio: ["ignore", "pipe", "pipe"] });
      const pid = child.pid;
      if (pid !== undefined) {
        this.ledger?.started(pid);
        child.once("close", () => this.ledger?.finished(pid));
      }
      let stderr = "";
      child.stderr.setEncoding("utf8").on("data", (c: string) => {
        if (stderr.length < 8192) stderr += c;
      });
      const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
      let bytes = 0;
      // Backpressure from a stalled peer stops the send's output too, so its flow is the stream's.
      const stall = watchForStall(this.options.stallTimeoutMs ?? STALL_TIMEOUT_MS, (err) =>
        socket.destroy(err),
      );
      child.stdout.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        stall.progress();
      });
      try {
        await pipeline(child.stdout, socket);
      } catch (err) {
        child.kill("SIGKILL");
        await exited;
        throw new Error(
          `stream of ${snapshot} to the peer broke after ${bytes} bytes: ${describeError(err)}`,
        );
      } finally {
        stall.stop();
      }
      const code = await exited;
      if (code !== 0) throw new Error(`${argv.join(" ")} exited with code ${code}: ${stderr.trim()}`);
      log.info({ snapshot, from, bytes, ms: Date.now() - started }, "sent snapshot");
    } finally {
      for (const [tag, s] of holds)
        await zfs
          .release(tag, [s])
          .catch((err: unknown) =>
            log.error({ err: describeError(err), tag, snapshot: s }, "could not release hold"),
          );
    }
  }

  /**
   * The GUID of the snapshot to send once it may be sent, or undefined once
   * the peer has been told why not. A waited send takes it from the agent,
   * which vouches for the snapshot and its base; any other send holds both
   * (the hold is the existence check too), recording each hold in `holds`.
   */
  private async readyToSend(
    socket: TLSSocket,
    request: Extract<Request, { op: "send" }>,
    snapshot: string,
    from: string | undefined,
    holds: Array<[tag: string, snapshot: string]>,
  ): Promise<string | undefined> {
    const zfs = this.options.zfs;
    const missing = async (s: string) => {
      await reply(socket, { ok: false, code: "NotFound", message: `snapshot ${s} does not exist` });
      return undefined;
    };
    const wait = request.waitMs ?? 0;
    if (wait > 0 && this.options.awaitSnapshot) {
      // Looked for before the wait, so a stale base is refused as one is without waiting.
      if (from && !(await zfs.exists(from))) return missing(from);
      const vouched = await this.options.awaitSnapshot(request.volume, request.snapshot, wait);
      if (vouched === undefined) {
        await reply(socket, {
          ok: false,
          code: "NotYet",
          message: `snapshot ${snapshot} was not ready to send within ${wait} ms`,
        });
      }
      return vouched;
    }
    const hold = async (s: string): Promise<boolean> => {
      try {
        holds.push([await holdSlot(zfs, s), s]);
        return true;
      } catch (err) {
        if (!(err instanceof ZfsError && err.code === "ZfsNotFound")) throw err;
        return false;
      }
    };
    if (from && !(await hold(from))) return missing(from);
    // Two commands at once: the hold and the GUID the peer checks.
    const [held, guid] = await Promise.all([
      hold(snapshot),
      zfs.properties(snapshot, ["guid"]).then(
        (p) => p.get("guid")?.value ?? "",
        (err: unknown) => ({ failed: err }),
      ),
    ]);
    if (!held) return missing(snapshot);
    if (typeof guid !== "string") throw guid.failed;
    return guid;
  }
}

/** Holds `snapshot` under the first free tag (a hold of several snapshots in one command is not atomic). */
async function holdSlot(zfs: Zfs, snapshot: string): Promise<string> {
  for (const tag of HOLD_TAGS) {
    try {
      await zfs.hold(tag, [snapshot]);
      return tag;
    } catch (err) {
      if (!(err instanceof ZfsError && /tag already exists/.test(err.message))) throw err;
    }
  }
  throw new Error(`${snapshot} is in ${HOLD_TAGS.length} sends already; try again later`);
}

/** Connections that have had their one response line. */
const answered = new WeakSet<TLSSocket>();

function reply(socket: TLSSocket, response: Response): Promise<void> {
  answered.add(socket);
  return new Promise<void>((resolve, reject) =>
    socket.write(`${JSON.stringify(response)}\n`, (err) => (err ? reject(err) : resolve())),
  ).then(() => {
    if (!response.ok) socket.end();
  });
}
