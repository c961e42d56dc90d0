/** Helpers for the responder's tests: queries on the wire, a zone over a record store, the DNS program. */
import { createSocket } from "node:dgram";
import { BlockList, Socket } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Answer, type DecodedPacket, decode, encode, type Packet, RECURSION_DESIRED } from "dns-packet";
import { run } from "../../kit/exec.ts";
import type { InformerHandlers } from "../../kit/k8s/informer.ts";
import type { Zone } from "./query.ts";
import { type PodRecord, RecordStore } from "./records.ts";

export interface QueryOptions {
  id?: number;
  class?: string;
  /** EDNS payload size; absent: no OPT record. */
  edns?: number;
  ednsVersion?: number;
  dnssecOk?: boolean;
  flags?: number;
}

export function queryPacket(name: string, type: string, options: QueryOptions = {}): Buffer {
  const additionals: Answer[] = [];
  if (options.edns !== undefined) {
    additionals.push({
      type: "OPT",
      name: ".",
      udpPayloadSize: options.edns,
      extendedRcode: 0,
      ednsVersion: options.ednsVersion ?? 0,
      flags: options.dnssecOk ? 0x8000 : 0,
      flag_do: options.dnssecOk ?? false,
      options: [],
    });
  }
  const packet = {
    type: "query",
    id: options.id ?? 4242,
    flags: options.flags ?? RECURSION_DESIRED,
    questions: [{ name, type, class: options.class ?? "IN" }],
    additionals,
  } as Packet;
  return encode(packet);
}

export type DecodedResponse = DecodedPacket & { rcode: string; opcode: string };

export function decodeResponse(message: Buffer): DecodedResponse {
  return decode(message) as DecodedResponse;
}

/** The addresses of a response's A/AAAA answers, in order. */
export function addressesOf(message: Buffer): string[] {
  return (decode(message).answers ?? []).flatMap((a) =>
    (a.type === "A" || a.type === "AAAA") && typeof a.data === "string" ? [a.data] : [],
  );
}

export class TestZone implements Zone {
  readonly records = new RecordStore();
  private readonly owned = new BlockList();
  settingsChanges = 0;

  constructor(
    public domain = "skein.local",
    public ttlSeconds = 2,
    cidr = "10.244.0.0/16",
  ) {
    const [network = "", prefix = "0"] = cidr.split("/");
    this.owned.addSubnet(network, Number(prefix), "ipv4");
  }

  get version(): number {
    return this.records.version + this.settingsChanges;
  }

  ownsAddress(address: string): boolean {
    return address.includes(".") && this.owned.check(address, "ipv4");
  }

  addPod(name: string, addresses: string[], names: string[] = [], namespace = "default"): PodRecord {
    const record = {
      key: `${namespace}/${name}`,
      names: [`${name}.${namespace}`, ...names],
      addresses,
      pointer: `${name}.${namespace}`,
    };
    this.records.set(record);
    return record;
  }
}

/** An in-memory stand-in for an informer: put/remove call the handlers as a watch would. */
export class FakeSource<T extends { metadata?: { name?: string; namespace?: string } }> {
  private readonly objects = new Map<string, T>();
  private readonly handlers: InformerHandlers<T>[] = [];

  on(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
    for (const obj of this.objects.values()) handlers.add?.(obj);
  }

  get(key: string): T | undefined {
    return this.objects.get(key);
  }

  list(): T[] {
    return [...this.objects.values()];
  }

  put(obj: T): void {
    const key = keyOf(obj);
    const old = this.objects.get(key);
    this.objects.set(key, obj);
    for (const h of this.handlers) {
      if (old) h.update?.(old, obj);
      else h.add?.(obj);
    }
  }

  remove(obj: T): void {
    const key = keyOf(obj);
    const old = this.objects.get(key);
    if (!old) return;
    this.objects.delete(key);
    for (const h of this.handlers) h.delete?.(old);
  }
}

function keyOf(obj: { metadata?: { name?: string; namespace?: string } }): string {
  const ns = obj.metadata?.namespace;
  return ns ? `${ns}/${obj.metadata?.name}` : (obj.metadata?.name ?? "");
}

/** One UDP query to the responder; undefined when no answer comes within `timeoutMs`. */
export async function udpAsk(
  port: number,
  message: Buffer,
  timeoutMs = 1000,
  host = "127.0.0.1",
): Promise<Buffer | undefined> {
  const socket = createSocket("udp4");
  try {
    return await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      socket.on("message", (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      socket.send(message, port, host);
    });
  } finally {
    socket.close();
  }
}

/** Sends messages over one TCP connection and collects the answers. */
export async function tcpAsk(port: number, messages: Buffer[], timeoutMs = 2000): Promise<Buffer[]> {
  const socket = new Socket();
  const answers: Buffer[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.connect(port, "127.0.0.1", () => resolve());
    });
    return await new Promise((resolve) => {
      let buffered = Buffer.alloc(0);
      const timer = setTimeout(() => resolve(answers), timeoutMs);
      socket.on("data", (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          answers.push(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
          buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
        }
        if (answers.length === messages.length) {
          clearTimeout(timer);
          resolve(answers);
        }
      });
      socket.on("close", () => {
        clearTimeout(timer);
        resolve(answers);
      });
      for (const m of messages) {
        const framed = Buffer.alloc(2 + m.length);
        framed.writeUInt16BE(m.length, 0);
        m.copy(framed, 2);
        socket.write(framed);
      }
    });
  } finally {
    socket.destroy();
  }
}

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Builds the DNS program as `npm run build` does (the executable scripts/build-dns.mjs compiles) into `dir`. */
export async function buildDnsExecutable(dir: string): Promise<string> {
  const executable = join(dir, "skein-dns");
  await run([process.execPath, join(ROOT, "scripts/build-dns.mjs"), executable], { timeoutMs: 120_000 });
  return executable;
}
