import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { connect, createServer, type TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCa, issueNodeCert, type PemPair } from "../../kit/pki.ts";
import { createPool, type Pool } from "../../test/fixtures/pool.ts";
import { scratchDir } from "../../test/fixtures/scratch.ts";
import { skeinRoot, volumeDataset } from "../zfs/names.ts";
import { Zfs } from "../zfs/runner.ts";
import { listPeerSnapshots, pullSnapshot, TransferError } from "./client.ts";
import { newestCommon } from "./protocol.ts";
import { SendLedger } from "./send-ledger.ts";
import { TransferServer, type TransferTls } from "./server.ts";

const tlsOf = (ca: PemPair, node: PemPair): TransferTls => ({
  caPem: ca.certPem,
  certPem: node.certPem,
  keyPem: node.keyPem,
});

function checksums(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir).sort())
    out[f] = createHash("sha256")
      .update(readFileSync(join(dir, f)))
      .digest("hex");
  return out;
}

describe("transfer endpoint", () => {
  let source: Pool;
  let target: Pool;
  let zfs: Zfs;
  let ca: PemPair;
  let nodeA: TransferTls;
  let nodeB: TransferTls;
  let server: TransferServer;
  let peer: { node: string; host: string; port: number };
  let ledgerDir: string;
  const volume = "vol-1";

  beforeAll(async () => {
    [source, target] = [await createPool(), await createPool()];
    ledgerDir = scratchDir("transfer");
    zfs = await Zfs.detect();
    ca = await createCa("skein-transfer-ca");
    nodeA = tlsOf(ca, await issueNodeCert(ca, "node-a"));
    nodeB = tlsOf(ca, await issueNodeCert(ca, "node-b"));
    await zfs.create(volumeDataset(source.name, volume), { parents: true });
    await zfs.create(skeinRoot(target.name));
    server = new TransferServer({ pool: source.name, zfs, tls: nodeA, host: "127.0.0.1", port: 0 });
    peer = { node: "node-a", host: "127.0.0.1", port: await server.start() };
  });

  afterAll(async () => {
    await server?.stop();
    await source?.destroy();
    await target?.destroy();
    if (ledgerDir) rmSync(ledgerDir, { recursive: true, force: true });
  });

  const srcDir = () => join(source.mountRoot, "skein", volume);
  const dstDir = () => join(target.mountRoot, "skein", volume);

  it("carries a full stream, then an incremental one, byte for byte", async () => {
    writeFileSync(join(srcDir(), "a.bin"), randomBytes(3 * 1024 * 1024));
    writeFileSync(join(srcDir(), "b.txt"), "first");
    await zfs.snapshot(`${volumeDataset(source.name, volume)}@s1`);
    const full = await pullSnapshot(
      peer,
      nodeB,
      { volume, snapshot: "s1" },
      { zfs, dataset: volumeDataset(target.name, volume) },
    );
    expect(full.bytes).toBeGreaterThan(3 * 1024 * 1024);
    expect(checksums(dstDir())).toEqual(checksums(srcDir()));

    writeFileSync(join(srcDir(), "b.txt"), "second");
    writeFileSync(join(srcDir(), "c.bin"), randomBytes(64 * 1024));
    await zfs.snapshot(`${volumeDataset(source.name, volume)}@s2`);
    const delta = await pullSnapshot(
      peer,
      nodeB,
      { volume, snapshot: "s2", from: "s1" },
      { zfs, dataset: volumeDataset(target.name, volume), force: true },
    );
    expect(delta.bytes).toBeLessThan(full.bytes / 4);
    expect(checksums(dstDir())).toEqual(checksums(srcDir()));
  });

  it("lists the peer's snapshots with GUIDs that match the received copies", async () => {
    const remote = await listPeerSnapshots(peer, nodeB, volume);
    expect(remote.map((s) => s.name)).toEqual(["s1", "s2"]);
    const local = await zfs.get(
      [`${volumeDataset(target.name, volume)}@s1`, `${volumeDataset(target.name, volume)}@s2`],
      ["guid"],
    );
    const localInfo = local.map((r) => ({ name: r.name.split("@")[1]!, guid: r.value }));
    expect(newestCommon(remote, localInfo)?.name).toBe("s2");
  });

  it("releases its holds once a send is done", async () => {
    expect(await zfs.holdCount(`${volumeDataset(source.name, volume)}@s1`)).toBe(0);
    expect(await zfs.holdCount(`${volumeDataset(source.name, volume)}@s2`)).toBe(0);
  });

  it("refuses a client without a certificate", async () => {
    const outcome = await new Promise<string>((resolve) => {
      const s = connect({
        host: peer.host,
        port: peer.port,
        ca: ca.certPem,
        servername: "node-a",
        minVersion: "TLSv1.3",
      });
      s.on("secureConnect", () => s.write(`${JSON.stringify({ v: 1, op: "snapshots", volume })}\n`));
      s.on("data", (d) => resolve(`answered: ${d}`));
      s.on("error", (e) => resolve(`error: ${e.message}`));
      s.on("close", () => resolve("closed"));
    });
    expect(outcome).not.toMatch(/answered/);
  });

  it("refuses a client whose certificate another CA signed", async () => {
    const rogueCa = await createCa("skein-transfer-ca");
    const rogue = tlsOf(ca, await issueNodeCert(rogueCa, "node-b"));
    await expect(listPeerSnapshots(peer, rogue, volume)).rejects.toThrow(TransferError);
  });

  it("refuses to talk to a server that is not the node it meant", async () => {
    await expect(listPeerSnapshots({ ...peer, node: "node-c" }, nodeB, volume)).rejects.toThrow(
      /is node-a, not node-c/,
    );
  });

  it.each([
    [
      "a volume path that escapes",
      { volume: "../../etc", snapshot: "s1" },
      /PeerBadRequest|must be a volume name/,
    ],
    ["an unknown volume", { volume: "nope", snapshot: "s1" }, /has no dataset/],
    ["an unknown snapshot", { volume, snapshot: "s9" }, /does not exist/],
  ])("answers %s with a clear refusal", async (_what, request, message) => {
    await expect(
      pullSnapshot(peer, nodeB, request, { zfs, dataset: volumeDataset(target.name, "other") }),
    ).rejects.toThrow(message);
    expect(await zfs.exists(volumeDataset(target.name, "other"))).toBe(false);
  });

  it("takes a snapshot on the source for a round, streams the increment, and prunes the series", async () => {
    const dataset = volumeDataset(source.name, volume);
    const into = { zfs, dataset: volumeDataset(target.name, "rounds") };
    writeFileSync(join(srcDir(), "round-base.bin"), randomBytes(3 * 1024 * 1024));
    const first = await pullSnapshot(peer, nodeB, { volume, snapshot: "skein-xfer-t-1", take: true }, into);
    expect(first.bytes).toBeGreaterThan(3 * 1024 * 1024);
    writeFileSync(join(srcDir(), "round.txt"), "written between rounds");
    const second = await pullSnapshot(
      peer,
      nodeB,
      { volume, snapshot: "skein-xfer-t-2", from: "skein-xfer-t-1", take: true },
      { ...into, force: true },
    );
    expect(second.bytes).toBeLessThan(first.bytes / 4);
    expect(readFileSync(join(target.mountRoot, "skein", "rounds", "round.txt"), "utf8")).toBe(
      "written between rounds",
    );
    // Taken by the source meanwhile (a migration's final snapshot): newer than the base, so it stays.
    await zfs.snapshot(`${dataset}@skein-xfer-t-final`);
    await pullSnapshot(
      peer,
      nodeB,
      { volume, snapshot: "skein-xfer-t-3", from: "skein-xfer-t-2", take: true },
      { ...into, force: true },
    );
    // Older than the base, the series goes (just after the stream ends); the base and newer stay.
    const series = async () => (await zfs.snapshots(dataset)).filter((s) => s.includes("skein-xfer-t-"));
    for (let i = 0; i < 50 && (await series()).length > 3; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await series()).toEqual([
      `${dataset}@skein-xfer-t-2`,
      `${dataset}@skein-xfer-t-final`,
      `${dataset}@skein-xfer-t-3`,
    ]);
  });

  it("refuses a round whose snapshot name lacks the transfer prefix", async () => {
    await expect(
      pullSnapshot(
        peer,
        nodeB,
        { volume, snapshot: "s9", take: true },
        { zfs, dataset: volumeDataset(target.name, "x") },
      ),
    ).rejects.toThrow(/PeerBadRequest|transfer request/);
    expect(await zfs.exists(`${volumeDataset(source.name, volume)}@s9`)).toBe(false);
  });

  it("asks the node agent whether an authenticated peer may have what it asks for", async () => {
    const guarded = new TransferServer({
      pool: source.name,
      zfs,
      tls: nodeA,
      host: "127.0.0.1",
      port: 0,
      authorize: (who, request) =>
        who === "node-b" && request.op === "snapshots" ? undefined : `${who} may not ${request.op}`,
    });
    const port = await guarded.start();
    try {
      const at = { node: "node-a", host: "127.0.0.1", port };
      expect((await listPeerSnapshots(at, nodeB, volume)).length).toBeGreaterThan(0);
      const nodeC = tlsOf(ca, await issueNodeCert(ca, "node-c"));
      await expect(listPeerSnapshots(at, nodeC, volume)).rejects.toThrow(
        /PeerForbidden|node-c may not snapshots/,
      );
      await expect(
        pullSnapshot(
          at,
          nodeB,
          { volume, snapshot: "skein-xfer-z-1", take: true },
          { zfs, dataset: volumeDataset(target.name, "y") },
        ),
      ).rejects.toThrow(/node-b may not round/);
      expect(await zfs.exists(`${volumeDataset(source.name, volume)}@skein-xfer-z-1`)).toBe(false);
    } finally {
      await guarded.stop();
    }
  });
  it("waits with a send for a snapshot the agent has yet to release, and only for one it releases", async () => {
    const dataset = volumeDataset(source.name, volume);
    let release: ((guid: string) => void) | undefined;
    const waiting = new TransferServer({
      pool: source.name,
      zfs,
      tls: nodeA,
      host: "127.0.0.1",
      port: 0,
      // What the agent says of a cutover's final snapshot: ready once released, not before.
      awaitSnapshot: (_volume, snapshot, ms) =>
        new Promise<string | undefined>((resolve) => {
          if (snapshot !== "final") return resolve(undefined);
          release = resolve;
          setTimeout(() => resolve(undefined), ms);
        }),
    });
    const at = { node: "node-a", host: "127.0.0.1", port: await waiting.start() };
    const into = { zfs, dataset: volumeDataset(target.name, volume), force: true };
    try {
      const base = (await zfs.snapshots(volumeDataset(target.name, volume))).at(-1)?.split("@")[1];
      const pulled = pullSnapshot(at, nodeB, { volume, snapshot: "final", from: base, waitMs: 5_000 }, into);
      for (let i = 0; i < 50 && !release; i++) await new Promise((r) => setTimeout(r, 20));
      writeFileSync(join(srcDir(), "last-words.txt"), "written before the release");
      await zfs.snapshot(`${dataset}@final`);
      // The agent knows the GUID of what it took; the endpoint looks nothing up.
      release?.((await zfs.properties(`${dataset}@final`, ["guid"])).get("guid")?.value ?? "");
      expect((await pulled).bytes).toBeGreaterThan(0);
      expect(readFileSync(join(dstDir(), "last-words.txt"), "utf8")).toBe("written before the release");
      // Existing is not enough: one the agent never released is refused after the wait.
      await zfs.snapshot(`${dataset}@stale`);
      await expect(
        pullSnapshot(at, nodeB, { volume, snapshot: "stale", from: "final", waitMs: 100 }, into),
      ).rejects.toThrow(/PeerNotYet|not ready to send within 100 ms/);
      expect(await zfs.exists(`${volumeDataset(target.name, volume)}@stale`)).toBe(false);
      // As the next test expects the copy.
      await zfs.rollback(`${volumeDataset(target.name, volume)}@${base}`, { destroyNewer: true });
    } finally {
      await waiting.stop();
    }
  });

  it("gives up a send whose peer stops reading, and releases its holds", async () => {
    const stalling = "vol-stall";
    const dataset = volumeDataset(source.name, stalling);
    await zfs.create(dataset);
    // More than the kernel's socket buffers can absorb, so the send must block.
    writeFileSync(join(source.mountRoot, "skein", stalling, "big.bin"), randomBytes(40 * 1024 * 1024));
    await zfs.snapshot(`${dataset}@s`);
    const watched = new TransferServer({
      pool: source.name,
      zfs,
      tls: nodeA,
      host: "127.0.0.1",
      port: 0,
      stallTimeoutMs: 1_000,
      ledgerPath: join(ledgerDir, "stall-sends"),
    });
    const port = await watched.start();
    try {
      const client = connect({
        host: "127.0.0.1",
        port,
        ca: ca.certPem,
        cert: nodeB.certPem,
        key: nodeB.keyPem,
        servername: "node-a",
        checkServerIdentity: () => undefined,
      });
      try {
        // One chunk, then never read again: a peer behind a cut link looks like this.
        await new Promise<void>((resolve, reject) => {
          client.once("secureConnect", () =>
            client.write(`${JSON.stringify({ v: 1, op: "send", volume: stalling, snapshot: "s" })}\n`),
          );
          client.once("data", () => {
            client.pause();
            resolve();
          });
          client.once("error", reject);
        });
        expect(await zfs.holdCount(`${dataset}@s`)).toBe(1);
        // Written down while it runs, so a restart after a kill can find its holds.
        expect(new SendLedger(join(ledgerDir, "stall-sends")).leftover()).toHaveLength(1);
        // The server gives the send up on its own: the hold goes while the client still sits there.
        for (let i = 0; i < 100 && (await zfs.holdCount(`${dataset}@s`)) > 0; i++)
          await new Promise((r) => setTimeout(r, 100));
      } finally {
        client.destroy();
      }
      expect(await zfs.holdCount(`${dataset}@s`)).toBe(0);
    } finally {
      await watched.stop();
    }
  });

  it("releases on start the holds a killed incremental send left (zfs-fuse leaks them)", async () => {
    const dataset = volumeDataset(source.name, volume);
    const ledgerPath = join(ledgerDir, "killed-sends");
    // A send the way a killed agent leaves it: recorded, then gone mid-stream.
    const send = spawn("zfs", ["send", "-I", `${dataset}@s1`, `${dataset}@s2`], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    new SendLedger(ledgerPath).started(send.pid ?? 0);
    await new Promise((resolve) => send.stdout.once("data", resolve));
    send.kill("SIGKILL");
    await new Promise((resolve) => send.once("close", resolve));
    expect(await zfs.holdCount(`${dataset}@s2`)).toBeGreaterThan(0);
    const restarted = new TransferServer({
      pool: source.name,
      zfs,
      tls: nodeA,
      host: "127.0.0.1",
      port: 0,
      ledgerPath,
    });
    await restarted.start();
    try {
      expect(await zfs.holdCount(`${dataset}@s1`)).toBe(0);
      expect(await zfs.holdCount(`${dataset}@s2`)).toBe(0);
      expect(new SendLedger(ledgerPath).leftover()).toEqual([]);
    } finally {
      await restarted.stop();
    }
  });

  it("gives up a pull whose stream stops arriving, and leaves nothing behind", async () => {
    // A peer that answers and then sends nothing, as one behind a cut link does.
    const silent = createServer({
      ca: ca.certPem,
      cert: nodeA.certPem,
      key: nodeA.keyPem,
      requestCert: true,
      rejectUnauthorized: true,
    });
    const open = new Set<TLSSocket>();
    silent.on("secureConnection", (s) => {
      open.add(s);
      s.write(`${JSON.stringify({ ok: true, op: "send", guid: "1" })}\n`);
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const at = { node: "node-a", host: "127.0.0.1", port: (silent.address() as AddressInfo).port };
      const into = { zfs, dataset: volumeDataset(target.name, "silent") };
      await expect(
        pullSnapshot(at, nodeB, { volume, snapshot: "s1" }, into, undefined, 1_000),
      ).rejects.toThrow(/no byte moved for 1 s/);
      expect(await zfs.exists(into.dataset)).toBe(false);
    } finally {
      for (const s of open) s.destroy();
      silent.close();
    }
  });

  it("leaves the target as it was when the stream breaks mid-way", async () => {
    writeFileSync(join(srcDir(), "big.bin"), randomBytes(48 * 1024 * 1024));
    await zfs.snapshot(`${volumeDataset(source.name, volume)}@s3`);
    const before = checksums(dstDir());
    let cut = false;
    const attempt = pullSnapshot(
      peer,
      nodeB,
      { volume, snapshot: "s3", from: "s2" },
      { zfs, dataset: volumeDataset(target.name, volume), force: true },
      (bytes) => {
        if (!cut && bytes > 1024 * 1024) {
          cut = true;
          void server.stop();
        }
      },
    );
    await expect(attempt).rejects.toThrow(/ReceiveFailed|failed after/);
    expect(await zfs.snapshots(volumeDataset(target.name, volume))).toEqual([
      `${volumeDataset(target.name, volume)}@s1`,
      `${volumeDataset(target.name, volume)}@s2`,
    ]);
    expect(checksums(dstDir())).toEqual(before);
    // The source's snapshot is not left held by the broken send.
    for (let i = 0; i < 50 && (await zfs.holdCount(`${volumeDataset(source.name, volume)}@s3`)) > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await zfs.holdCount(`${volumeDataset(source.name, volume)}@s3`)).toBe(0);
  });
});
