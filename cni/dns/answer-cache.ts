/**
 * Encoded local answers, so a repeated query costs a map lookup and a copy
 * instead of a decode and an encode.
 *
 * Keyed like the forward cache (the query's bytes after its ID), valid for one
 * version of the zone: any change to records or settings empties it. An answer
 * that rotates keeps one encoding per rotation, built when first needed; the
 * rotation counter itself stays in the record store, so cached and uncached
 * answers share one fair order. Bounded in entries and in bytes: when full it
 * starts over, which under a flood of distinct names is no worse than no cache.
 */
import type { RotationKey } from "./query.ts";

export interface CachedAnswer {
  rcode: number;
  records: number;
  rotation?: RotationKey;
  build(rotation: number): Buffer;
  encodings: (Buffer | undefined)[];
}

export class AnswerCache {
  private entries = new Map<string, CachedAnswer>();
  private version = Number.NaN;
  private bytes = 0;

  constructor(
    private readonly maxBytes = 8 * 1024 * 1024,
    /** Each entry also holds its question and a builder: a few hundred bytes beyond what is counted. */
    private readonly maxEntries = 16_384,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The answer kept for this query (its bytes after the ID), if any in this version of the zone. */
  get(query: Buffer, version: number): CachedAnswer | undefined {
    if (version !== this.version) {
      this.startOver();
      this.version = version;
      return undefined;
    }
    return this.entries.get(keyOf(query));
  }

  set(query: Buffer, version: number, answer: CachedAnswer): void {
    if (version !== this.version) return;
    const key = keyOf(query);
    if (this.entries.size >= this.maxEntries) this.startOver();
    this.account(key.length + 64);
    this.entries.set(key, answer);
  }

  /** The encoding of `answer` for `rotation`, built once. */
  encoding(answer: CachedAnswer, rotation: number): Buffer {
    let encoded = answer.encodings[rotation];
    if (!encoded) {
      encoded = answer.build(rotation);
      answer.encodings[rotation] = encoded;
      this.account(encoded.length);
    }
    return encoded;
  }

  private account(bytes: number): void {
    if (this.bytes + bytes > this.maxBytes) this.startOver();
    this.bytes += bytes;
  }

  private startOver(): void {
    this.entries = new Map();
    this.bytes = 0;
  }
}

/** The query's bytes after its ID: flags, question and EDNS options all shape the answer. */
function keyOf(query: Buffer): string {
  return query.toString("latin1", 2);
}
