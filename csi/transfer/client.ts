/**
 * The pulling side of a transfer: a node asks a peer's transfer endpoint for a
 * volume's snapshot stream and feeds it to its own `zfs receive`. The stream
 * passes through a large buffer so a slow disk on one side and a slow link on
 * the other do not stall each other, and the received snapshot's GUID is
 * checked against the one the sender announced.
 */
import { spawn } from "node:child_process";
import { PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import { connect, type TLSSocket } from "node:tls";
import { SkeinError } from "../../kit/errors.ts";
import { receiveArgs } from "../zfs/commands.ts";
import type { Zfs } from "../zfs/runner.ts";
import { readHeaderLine } from "./header.ts";
import { MAX_HEADER_BYTES, type Request, type Response, type SnapshotInfo } from "./protocol.ts";
import type { TransferTls } from "./server.ts";
import { STALL_TIMEOUT_MS, watchForStall } from "./stall.ts";

export interface Peer {
  /** The node name its certificate must carry. */
  node: string;
  host: string;
  port: number;
}

export class TransferError extends SkeinError {}

const BUFFER_BYTES = 16 * 1024 * 1024;
const CONNECT_TIMEOUT_MS = 10_000;

async function open(
  peer: Peer,
  tls: TransferTls,
  request: Request,
): Promise<{ socket: TLSSocket; response: Response; rest: Buffer }> {
  const socket = connect({
    host: peer.host,
    port: peer.port,
    ca: tls.caPem,
    cert: tls.certPem,
    key: tls.keyPem,
    minVersion: "TLSv1.3",
    servername: peer.node,
    // The CA vouches for every node; this checks it is the node we meant.
    checkServerIdentity: (_host, cert) =>
      cert.subject?.CN === peer.node
        ? undefined
        : new TransferError(
            "PeerMismatch",
            `transfer peer at ${peer.host}:${peer.port} is ${cert.subject?.CN}, not ${peer.node}`,
          ),
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no TLS handshake within ${CONNECT_TIMEOUT_MS} ms`)),
        CONNECT_TIMEOUT_MS,
      );
      socket.once("secureConnect", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    socket.write(`${JSON.stringify(request)}\n`);
    const { line, rest } = await readHeaderLine(socket, MAX_HEADER_BYTES, 30_000);
    return { socket, response: JSON.parse(line) as Response, rest };
  } catch (err) {
    socket.destroy();
    throw new TransferError(
      "PeerUnreachable",
      `transfer from ${peer.node} (${peer.host}:${peer.port}) failed: ${String(err instanceof Error ? err.message : err)}`,
      { cause: err },
    );
  }
}

function refused(peer: Peer, response: Extract<Response, { ok: false }>): TransferError {
  return new TransferError(`Peer${response.code}`, `${peer.node} refused the transfer: ${response.message}`);
}

/** The peer's snapshots of `volume`, oldest first. */
export async function listPeerSnapshots(
  peer: Peer,
  tls: TransferTls,
  volume: string,
): Promise<SnapshotInfo[]> {
  const { socket, response } = await open(peer, tls, { v: 1, op: "snapshots", volume });
  socket.destroy();
  if (!response.ok) throw refused(peer, response);
  if (response.op !== "snapshots")
    throw new TransferError("BadResponse", `${peer.node} answered ${response.op} to snapshots`);
  return response.snapshots;
}

export interface PullRequest {
  volume: string;
  snapshot: string;
  /** Incremental from this snapshot, which the receiving dataset must have. */
  from?: string;
  intermediates?: boolean;
  /** Ask the peer to take `snapshot` first (a "round"; the name must carry the transfer prefix). */
  take?: boolean;
  /** Not taken yet, the peer waits this long for `snapshot` before it answers NotYet (at most MAX_WAIT_MS). */
  waitMs?: number;
}

export interface PullResult {
  bytes: number;
  guid: string;
}

/**
 * Pulls `volume@snapshot` from `peer` into `dataset` on this node. A broken
 * stream fails the receive (ZFS checks every record), leaving the dataset as it
 * was before; the caller retries from the newest common snapshot.
 */
export async function pullSnapshot(
  peer: Peer,
  tls: TransferTls,
  request: PullRequest,
  into: { zfs: Zfs; dataset: string; force?: boolean },
  onProgress?: (bytes: number) => void,
  stallTimeoutMs = STALL_TIMEOUT_MS,
): Promise<PullResult> {
  const { take, ...send } = request;
  const { socket, response, rest } = await open(
    peer,
    tls,
    take
      ? { v: 1, op: "round", volume: send.volume, snapshot: send.snapshot, from: send.from }
      : { v: 1, op: "send", ...send },
  );
  if (!response.ok) {
    socket.destroy();
    throw refused(peer, response);
  }
  if (response.op !== "send") {
    socket.destroy();
    throw new TransferError("BadResponse", `${peer.node} answered ${response.op} to send`);
  }
  const argv = receiveArgs(into.dataset, { force: into.force }, into.zfs.capabilities);
  const [program, ...args] = argv;
  const receiver = spawn(program, args, { stdio: ["pipe", "ignore", "pipe"] });
  let stderr = "";
  receiver.stderr.setEncoding("utf8").on("data", (c: string) => {
    if (stderr.length < 8192) stderr += c;
  });
  const exited = new Promise<number | null>((resolve) => receiver.once("close", (code) => resolve(code)));
  let bytes = rest.length;
  const buffer = new PassThrough({ highWaterMark: BUFFER_BYTES });
  buffer.write(rest);
  // Alive while bytes arrive or the receive takes them (it may lag behind the buffer).
  const stall = watchForStall(stallTimeoutMs, (err) => socket.destroy(err));
  // Counted as it passes, not by a stream stage of its own: every stage costs throughput.
  socket.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
    stall.progress();
    onProgress?.(bytes);
  });
  let streamError: unknown;
  const flowing = Promise.all([
    pipeline(socket, buffer).catch((err: unknown) => {
      streamError = err;
      receiver.kill("SIGKILL");
    }),
    pipeline(buffer, receiver.stdin).catch((err: unknown) => {
      streamError ??= err;
      socket.destroy();
    }),
  ]);
  // Listened to only once piped: a "data" listener alone would set the buffer flowing into nothing.
  buffer.on("data", () => stall.progress());
  await flowing.finally(() => stall.stop());
  const code = await exited;
  // A receive that exits well took a whole stream (ZFS checks every record up to the end
  // record); a stream error beside it (the receive closing its input while the peer's close
  // is still on the way) changes nothing, and the GUID check below confirms the copy.
  if (code !== 0) {
    // The stream's failure is the cause when there is one; the receive then only reports its input ending.
    const why = [
      streamError instanceof Error ? streamError.message : undefined,
      stderr.trim() || `exit code ${code}`,
    ]
      .filter(Boolean)
      .join("; zfs receive: ");
    throw new TransferError(
      "ReceiveFailed",
      `receiving ${request.volume}@${request.snapshot} from ${peer.node} into ${into.dataset} failed after ${bytes} bytes: ${why}`,
      { cause: streamError },
    );
  }
  const received = `${into.dataset}@${request.snapshot}`;
  const guid = (await into.zfs.properties(received, ["guid"])).get("guid")?.value;
  if (guid !== response.guid) {
    throw new TransferError(
      "GuidMismatch",
      `${received} has GUID ${guid}, but ${peer.node} sent ${response.guid}: the copy is not the snapshot that was sent`,
    );
  }
  return { bytes, guid };
}
