/**
 * One DNS query in, one decision out: an answer from the pod records, an error
 * the RFCs ask for, silence, or "forward this upstream". Pure apart from the
 * rotation counters it moves in the record store. The wire format is
 * dns-packet's; this file only decides what goes into a message.
 *
 * What the RFCs ask for, and where:
 * - fewer than 12 bytes, or a response (QR=1): silence, so nobody can make two
 *   servers answer each other forever (RFC 1035 §7.3 / 5452 practice);
 * - undecodable body, QDCOUNT ≠ 1, more than one OPT: FORMERR (RFC 1035,
 *   RFC 6891 §6.1.1);
 * - opcode other than QUERY: NOTIMP; EDNS version > 0: BADVERS (RFC 6891);
 * - a name below the domain that holds nothing: NXDOMAIN; a name that exists
 *   (or has names below it, RFC 8020) but not with the asked type: NOERROR
 *   with no answer; both with the SOA for negative caching (RFC 2308);
 * - UDP answers fit 512 bytes, or the client's EDNS size capped at 1232 (DNS
 *   flag day 2020); what does not fit is cut at a record boundary and TC set
 *   (RFC 2181 §9), so the client retries over TCP.
 */
import {
  type Answer,
  AUTHORITATIVE_ANSWER,
  CHECKING_DISABLED,
  type DecodedPacket,
  decode,
  encode,
  encodingLength,
  type OptAnswer,
  type Packet,
  type Question,
  RECURSION_AVAILABLE,
  RECURSION_DESIRED,
  TRUNCATED_RESPONSE,
} from "dns-packet";
import { normaliseName, relativeName, reverseNameAddress } from "./names.ts";
import { type Family, type RecordStore, rotate } from "./records.ts";

export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  BADVERS: 16,
} as const;

export type Rcode = (typeof RCODE)[keyof typeof RCODE];

export const RCODE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(RCODE).map(([name, code]) => [code, name]),
);

/** Classic DNS over UDP, RFC 1035. */
export const MIN_UDP_PAYLOAD = 512;
/** The EDNS payload size the responder offers and caps clients at (DNS flag day 2020). */
export const MAX_UDP_PAYLOAD = 1232;
/** A TCP message carries at most 65535 bytes after its length prefix. */
export const MAX_TCP_MESSAGE = 65535;

export type Transport = "udp" | "tcp";

/** What the responder serves: the domain, its TTL, and the records below it. */
export interface Zone {
  /** Normalised (see normaliseName). */
  readonly domain: string;
  readonly ttlSeconds: number;
  readonly records: RecordStore;
  /** Moves whenever any answer could differ (records or settings). */
  readonly version: number;
  /**
   * True for addresses the responder is authoritative for in reverse lookups
   * (the overlay's CIDR): unknown ones get NXDOMAIN instead of being forwarded.
   */
  ownsAddress(address: string): boolean;
}

/** The rotation an answer depends on, so a cache can keep one encoding per rotation. */
export interface RotationKey {
  name: string;
  family: Family;
  /** How many distinct rotations exist (the number of addresses). */
  variants: number;
}

export type Decision =
  | { kind: "drop"; reason: "short" | "response" }
  /**
   * An answer from this responder. `encode(rotation)` builds the message for
   * one rotation (ignored when `rotation` is absent); `rotation` says which
   * counter to move for each answer.
   */
  | { kind: "local"; rcode: Rcode; rotation?: RotationKey; encode(rotation: number): Buffer; records: number }
  /**
   * A name outside the domain: ask upstream. `limit` is the size the client
   * takes; `fail(rcode)` builds the answer if asking goes wrong.
   */
  | { kind: "forward"; question: Question; limit: number; fail(rcode: Rcode): Buffer };

const OPCODE_QUERY = 0;
const DNSSEC_OK = 0x8000;
const CLASS_IN = "IN";
const CLASS_ANY = "ANY";
const PRINTABLE = /^[\x20-\x7e]*$/;

/** What a parsed query carries into its answer. */
interface QueryContext {
  id: number;
  opcode: number;
  flags: number;
  question?: Question;
  /** The client's OPT record, when it sent one. */
  opt?: OptAnswer;
  /** Bytes the answer may take. */
  limit: number;
}

export function handleQuery(message: Buffer, zone: Zone, transport: Transport): Decision {
  if (message.length < 12) return { kind: "drop", reason: "short" };
  const header = message.readUInt16BE(2);
  if (header & 0x8000) return { kind: "drop", reason: "response" };
  const bare: QueryContext = {
    id: message.readUInt16BE(0),
    opcode: (header >> 11) & 0xf,
    flags: header & 0x7fff,
    limit: transport === "tcp" ? MAX_TCP_MESSAGE : MIN_UDP_PAYLOAD,
  };
  let packet: DecodedPacket;
  try {
    packet = decode(message);
  } catch {
    return fixed(bare, RCODE.FORMERR);
  }
  const opts = (packet.additionals ?? []).filter((a): a is OptAnswer => a.type === "OPT");
  if (opts.length > 1) return fixed(bare, RCODE.FORMERR);
  const opt = opts[0];
  const ctx: QueryContext = { ...bare, ...(opt ? { opt } : {}) };
  if (opt && transport === "udp") {
    ctx.limit = Math.max(MIN_UDP_PAYLOAD, Math.min(opt.udpPayloadSize, MAX_UDP_PAYLOAD));
  }
  if (opt && opt.ednsVersion > 0) return fixed(ctx, RCODE.BADVERS);
  if (ctx.opcode !== OPCODE_QUERY) return fixed(ctx, RCODE.NOTIMP);
  const questions = packet.questions ?? [];
  if (questions.length !== 1) return fixed(ctx, RCODE.FORMERR);
  const question = questions[0]!;
  // dns-packet reads labels as UTF-8 text; a name that is not printable ASCII
  // would not encode back to the bytes the client sent, so it is not echoed.
  if (PRINTABLE.test(question.name)) ctx.question = question;

  const name = normaliseName(question.name);
  const qclass = question.class ?? CLASS_IN;
  // A string, not RecordType: dns-packet's types leave out ANY and numbered types.
  const qtype: string = question.type;
  if (qtype === "AXFR" || qtype === "IXFR") return fixed(ctx, RCODE.REFUSED);

  const relative = relativeName(name, zone.domain);
  if (relative !== undefined) {
    if (qclass !== CLASS_IN && qclass !== CLASS_ANY) return fixed(ctx, RCODE.REFUSED);
    return answerInDomain(ctx, question, relative, zone);
  }
  const address = reverseNameAddress(name);
  if (address !== undefined && (qclass === CLASS_IN || qclass === CLASS_ANY)) {
    const pointers = zone.records.pointersOf(address);
    if (pointers.length > 0) {
      if (qtype !== "PTR" && qtype !== "ANY") return fixed(ctx, RCODE.NOERROR, { authoritative: true });
      const answers: Answer[] = pointers.map((p) => ({
        type: "PTR",
        name: question.name,
        ttl: zone.ttlSeconds,
        data: `${p}.${zone.domain}`,
      }));
      return fixed(ctx, RCODE.NOERROR, { authoritative: true, answers });
    }
    if (zone.ownsAddress(address)) return fixed(ctx, RCODE.NXDOMAIN, { authoritative: true });
  }
  return {
    kind: "forward",
    question,
    limit: ctx.limit,
    fail: (rcode) => respond(ctx, rcode, {}),
  };
}

function answerInDomain(ctx: QueryContext, question: Question, relative: string, zone: Zone): Decision {
  const qtype: string = question.type;
  const soa = soaRecord(zone);
  const negative = { authoritative: true, authorities: [soa] };
  if (relative === "apex") {
    if (qtype === "SOA" || qtype === "ANY") {
      return fixed(ctx, RCODE.NOERROR, { authoritative: true, answers: [{ ...soa, name: question.name }] });
    }
    return fixed(ctx, RCODE.NOERROR, negative);
  }
  const found = zone.records.lookup(relative);
  if (!found) return fixed(ctx, RCODE.NXDOMAIN, negative);
  const families: Family[] = qtype === "A" ? [4] : qtype === "AAAA" ? [6] : qtype === "ANY" ? [4, 6] : [];
  const withAddresses = families.filter((f) => (f === 4 ? found.v4 : found.v6).length > 0);
  if (withAddresses.length === 0) return fixed(ctx, RCODE.NOERROR, negative);
  // ANY rotates by the A counter; both lists then share the start index.
  const family = withAddresses[0]!;
  const variants = (family === 4 ? found.v4 : found.v6).length;
  const v4 = withAddresses.includes(4) ? found.v4 : [];
  const v6 = withAddresses.includes(6) ? found.v6 : [];
  const ttl = zone.ttlSeconds;
  return {
    kind: "local",
    rcode: RCODE.NOERROR,
    rotation: { name: relative, family, variants },
    records: v4.length + v6.length,
    encode: (rotation) =>
      respond(ctx, RCODE.NOERROR, {
        authoritative: true,
        answers: [
          ...rotate(v4, rotation).map((a): Answer => ({ type: "A", name: question.name, ttl, data: a })),
          ...rotate(v6, rotation).map((a): Answer => ({ type: "AAAA", name: question.name, ttl, data: a })),
        ],
      }),
  };
}

/** The zone's SOA: its minimum (and TTL) is the record TTL, so negative answers expire as fast as positive ones. */
function soaRecord(zone: Zone): Answer {
  const ttl = zone.ttlSeconds;
  return {
    type: "SOA",
    name: zone.domain,
    ttl,
    data: {
      mname: `ns.dns.${zone.domain}`,
      rname: `hostmaster.${zone.domain}`,
      serial: zone.records.version % 2 ** 32,
      refresh: 7200,
      retry: 1800,
      expire: 86400,
      minimum: ttl,
    },
  };
}

interface Sections {
  authoritative?: boolean;
  answers?: Answer[];
  authorities?: Answer[];
}

function fixed(ctx: QueryContext, rcode: Rcode, sections: Sections = {}): Decision {
  return {
    kind: "local",
    rcode,
    records: sections.answers?.length ?? 0,
    encode: () => respond(ctx, rcode, sections),
  };
}

/** An answer to `ctx` that fits its size limit, cut at a record boundary with TC set when it must be. */
export function respond(ctx: QueryContext, rcode: Rcode, sections: Sections): Buffer {
  let flags =
    (ctx.opcode << 11) |
    (ctx.flags & (RECURSION_DESIRED | CHECKING_DISABLED)) |
    RECURSION_AVAILABLE |
    (sections.authoritative ? AUTHORITATIVE_ANSWER : 0) |
    (rcode & 0xf);
  const additionals: Answer[] = [];
  if (ctx.opt) {
    const opt: OptAnswer = {
      type: "OPT",
      name: ".",
      udpPayloadSize: MAX_UDP_PAYLOAD,
      extendedRcode: rcode >> 4,
      ednsVersion: 0,
      // RFC 3225: the DO bit of the query is copied to the response.
      flags: ctx.opt.flags & DNSSEC_OK,
      flag_do: (ctx.opt.flags & DNSSEC_OK) !== 0,
      options: [],
    };
    additionals.push(opt);
  }
  const packet: Packet = {
    type: "response",
    id: ctx.id,
    flags,
    questions: ctx.question ? [ctx.question] : [],
    answers: sections.answers ?? [],
    authorities: sections.authorities ?? [],
    additionals,
  };
  if (encodingLength(packet) <= ctx.limit) return encode(packet);
  // Too big: keep the most answers that fit (no authority section), flag the cut.
  const all = packet.answers ?? [];
  let low = 0;
  let high = all.length;
  const fits = (n: number) =>
    encodingLength({ ...packet, answers: all.slice(0, n), authorities: [] }) <= ctx.limit;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (fits(mid)) low = mid;
    else high = mid - 1;
  }
  flags |= TRUNCATED_RESPONSE;
  return encode({ ...packet, flags, answers: all.slice(0, low), authorities: [] });
}
