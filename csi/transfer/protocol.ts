/**
 * The node-to-node transfer protocol, spoken over mutual TLS. A peer asks by
 * volume name, never by dataset path, so an authenticated node can read
 * Skein's volumes and nothing else on the pool.
 *
 *   client → server   one JSON line: a Request
 *   server → client   one JSON line: a Response
 *                     then, for "send" and "round" with ok: the raw `zfs send`
 *                     stream, ended by the server closing the connection.
 *
 * "round" is how a pulling node drives a migration or a replica: the source
 * takes a fresh snapshot (named by the puller, always with the transfer
 * prefix, so a peer can create nothing else) and streams it in the same
 * connection, incremental from a snapshot the puller already has. After a
 * round, the source drops the snapshots of that series (the name up to its
 * last "-") that are older than the round's base.
 */
import { InvalidInputError } from "../../kit/errors.ts";

export const PROTOCOL_VERSION = 1;
/** Header lines longer than this are refused before they are parsed. */
export const MAX_HEADER_BYTES = 4096;

const VOLUME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const SNAPSHOT = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,200}$/;
/** Snapshots that transfers make (and prune) start with this; nothing else is made on a peer's request. */
export const TRANSFER_SNAPSHOT_PREFIX = "skein-xfer-";
const TRANSFER_SNAPSHOT = /^skein-xfer-[a-z0-9][a-z0-9-]{0,100}$/;

export type Request =
  /** The volume's snapshots, oldest first: the client finds the newest common one. */
  | { v: 1; op: "snapshots"; volume: string }
  /**
   * Stream `volume@snapshot`, incremental from `from` when given. With
   * `waitMs`, a snapshot not taken yet is waited for that long (a cutover's
   * final one: the stream then starts the moment the source releases the
   * volume); still missing, the answer is NotYet.
   */
  | {
      v: 1;
      op: "send";
      volume: string;
      snapshot: string;
      from?: string;
      intermediates?: boolean;
      waitMs?: number;
    }
  /**
   * Take `volume@snapshot` now (or reuse it, on a retry) and stream it,
   * incremental from `from` with every snapshot in between (`-I`), else full.
   */
  | { v: 1; op: "round"; volume: string; snapshot: string; from?: string };

export interface SnapshotInfo {
  /** Short name, after the `@`. */
  name: string;
  /** ZFS GUID: equal GUIDs on two pools mean the same snapshot. */
  guid: string;
}

export type Response =
  | { ok: true; op: "snapshots"; snapshots: SnapshotInfo[] }
  | { ok: true; op: "send"; guid: string }
  | { ok: false; code: TransferErrorCode; message: string };

export type TransferErrorCode = "BadRequest" | "NotFound" | "NotYet" | "Forbidden" | "Failed";

/** The longest a send may wait for its snapshot: a waiting peer holds a connection and a worker. */
export const MAX_WAIT_MS = 5_000;

function field(obj: Record<string, unknown>, name: string, pattern: RegExp, what: string): string {
  const value = obj[name];
  if (typeof value !== "string" || !pattern.test(value)) {
    throw new InvalidInputError(`transfer request: "${name}" must be ${what}`);
  }
  return value;
}

/** Parses and validates a request line; throws InvalidInputError saying what is wrong. */
export function parseRequest(line: string): Request {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch {
    throw new InvalidInputError("transfer request: not JSON");
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    throw new InvalidInputError("transfer request: not a JSON object");
  }
  const r = obj as Record<string, unknown>;
  if (r.v !== PROTOCOL_VERSION) {
    throw new InvalidInputError(
      `transfer request: protocol version ${String(r.v)} is not ${PROTOCOL_VERSION}`,
    );
  }
  const volume = field(r, "volume", VOLUME, "a volume name");
  if (r.op === "snapshots") return { v: 1, op: "snapshots", volume };
  if (r.op === "round") {
    const round: Request = {
      v: 1,
      op: "round",
      volume,
      snapshot: field(
        r,
        "snapshot",
        TRANSFER_SNAPSHOT,
        `a snapshot name starting with ${TRANSFER_SNAPSHOT_PREFIX}`,
      ),
    };
    if (r.from !== undefined) round.from = field(r, "from", SNAPSHOT, "a snapshot name");
    return round;
  }
  if (r.op !== "send") throw new InvalidInputError(`transfer request: unknown op ${JSON.stringify(r.op)}`);
  const snapshot = field(r, "snapshot", SNAPSHOT, "a snapshot name");
  const request: Request = { v: 1, op: "send", volume, snapshot };
  if (r.from !== undefined) request.from = field(r, "from", SNAPSHOT, "a snapshot name");
  if (r.intermediates !== undefined) {
    if (typeof r.intermediates !== "boolean")
      throw new InvalidInputError('transfer request: "intermediates" must be a boolean');
    if (request.from === undefined)
      throw new InvalidInputError('transfer request: "intermediates" needs "from"');
    request.intermediates = r.intermediates;
  }
  if (r.waitMs !== undefined) {
    if (typeof r.waitMs !== "number" || !Number.isInteger(r.waitMs) || r.waitMs < 0 || r.waitMs > MAX_WAIT_MS)
      throw new InvalidInputError(
        `transfer request: "waitMs" must be a whole number from 0 to ${MAX_WAIT_MS}`,
      );
    request.waitMs = r.waitMs;
  }
  return request;
}

/** The newest snapshot both sides have (same GUID), or undefined when they share none. */
export function newestCommon(source: SnapshotInfo[], target: SnapshotInfo[]): SnapshotInfo | undefined {
  const have = new Set(target.map((s) => s.guid));
  for (let i = source.length - 1; i >= 0; i--) if (have.has(source[i]!.guid)) return source[i];
  return undefined;
}
