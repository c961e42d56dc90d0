/**
 * A small cache of upstream answers, so a burst of lookups of one outside
 * name costs one upstream round trip.
 *
 * Keyed by what the answer depends on (see cacheKey), so a hit is an answer
 * to exactly what was asked. An entry lives as long as its shortest TTL (negative answers:
 * the SOA's, RFC 2308), capped; served TTLs count down with its age. Bounded
 * in entries and bytes; the least recently used entry goes first.
 */
import { type Answer, type DecodedPacket, decode, encode, encodingLength } from "dns-packet";

export interface ForwardCacheOptions {
  maxEntries?: number;
  maxBytes?: number;
  /** Longest time an answer is kept, whatever its TTL says. */
  maxTtlSeconds?: number;
  now?: () => number;
}

interface Entry {
  response: Buffer;
  storedAt: number;
  ttlSeconds: number;
}

const NOERROR = 0;
const NXDOMAIN = 3;

export class ForwardCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly maxTtlSeconds: number;
  private readonly now: () => number;

  constructor(options: ForwardCacheOptions = {}) {
    this.maxEntries = options.maxEntries ?? 1024;
    this.maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
    this.maxTtlSeconds = options.maxTtlSeconds ?? 60;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The cached answer to `query` with the query's ID and TTLs reduced by the
   * entry's age, if one is fresh and still fits `limit` bytes.
   */
  get(query: Buffer, limit: number): Buffer | undefined {
    const key = cacheKey(query);
    const entry = key === undefined ? undefined : this.entries.get(key);
    if (!entry || key === undefined) return undefined;
    const ageSeconds = Math.floor((this.now() - entry.storedAt) / 1000);
    if (ageSeconds >= entry.ttlSeconds) {
      this.remove(key, entry);
      return undefined;
    }
    // Least recently used goes first: a hit moves the entry to the end.
    this.entries.delete(key);
    this.entries.set(key, entry);
    // Aged TTLs, and EDNS options dropped: a COOKIE in the stored answer belongs to another client.
    const packet = decode(entry.response);
    const age = (a: Answer): Answer =>
      a.type === "OPT" ? { ...a, options: [] } : { ...a, ttl: Math.max(0, (a.ttl ?? 0) - ageSeconds) };
    const aged: DecodedPacket = {
      ...packet,
      answers: (packet.answers ?? []).map(age),
      authorities: (packet.authorities ?? []).map(age),
      additionals: (packet.additionals ?? []).map(age),
    };
    // Re-encoding loses name compression; an answer that no longer fits is asked again.
    if (encodingLength(aged) > limit) return undefined;
    const response = encode(aged);
    response.writeUInt16BE(query.readUInt16BE(0), 0);
    return response;
  }

  /** Keeps `response` (to `query`) when it can be cached. */
  put(query: Buffer, response: Buffer): void {
    let packet: DecodedPacket;
    try {
      packet = decode(response);
    } catch {
      return;
    }
    const ttl = cacheableTtl(packet, response);
    if (ttl === undefined || ttl <= 0) return;
    const key = cacheKey(query);
    if (key === undefined) return;
    const old = this.entries.get(key);
    if (old) this.remove(key, old);
    const entry = {
      response: Buffer.from(response),
      storedAt: this.now(),
      ttlSeconds: Math.min(ttl, this.maxTtlSeconds),
    };
    this.entries.set(key, entry);
    this.bytes += entry.response.length + key.length;
    while (this.entries.size > this.maxEntries || this.bytes > this.maxBytes) {
      const [oldestKey, oldest] = this.entries.entries().next().value as [string, Entry];
      this.remove(oldestKey, oldest);
    }
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }

  private remove(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.bytes -= entry.response.length + key.length;
  }
}

/**
 * What an answer depends on: the question as asked (case included, it is
 * echoed), the RD and CD flags, and EDNS presence, size and DO bit; not the
 * ID nor EDNS options such as COOKIE, which differ on every query from dig
 * or a validating resolver.
 */
export function cacheKey(query: Buffer): string | undefined {
  try {
    const packet = decode(query);
    const q = packet.questions?.[0];
    if (!q || packet.questions?.length !== 1) return undefined;
    const opt = packet.additionals?.find((a) => a.type === "OPT");
    const edns = opt?.type === "OPT" ? `${opt.udpPayloadSize}/${opt.flags & 0x8000}` : "-";
    return `${q.name}|${q.type}|${q.class}|${(packet.flags ?? 0) & 0x0110}|${edns}`;
  } catch {
    return undefined;
  }
}

/**
 * How long an upstream answer may be cached: its shortest TTL for a positive
 * answer, the SOA's min(TTL, MINIMUM) for a negative one (RFC 2308), or
 * undefined for answers never to cache (errors, truncated, negative without SOA).
 */
export function cacheableTtl(packet: DecodedPacket, raw: Buffer): number | undefined {
  const rcode = raw.length >= 4 ? raw[3]! & 0xf : -1;
  if (packet.flag_tc) return undefined;
  if (rcode !== NOERROR && rcode !== NXDOMAIN) return undefined;
  const answers = (packet.answers ?? []).filter((a) => a.type !== "OPT");
  if (rcode === NOERROR && answers.length > 0) {
    const records = [...answers, ...(packet.authorities ?? [])];
    return Math.min(...records.map((a) => (a.type === "OPT" ? 0 : (a.ttl ?? 0))));
  }
  const soa = (packet.authorities ?? []).find((a) => a.type === "SOA");
  if (soa?.type !== "SOA") return undefined;
  return Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0);
}
