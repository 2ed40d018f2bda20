// conn_key -> partition: the shared hash of @wirescope/runtime (partitionOf: FNV-1a 32 over
// "<node>/<conn_key in decimal>" mod P). The hot path sees a key as two u32 halves; a small cache
// keeps it from building a BigInt and a decimal string for every event of a connection.
import { partitionOf } from "@wirescope/runtime";

const MAX_CACHED = 1 << 16;

export class PartitionHash {
  private cache = new Map<number, Map<number, number>>();
  private cached = 0;
  // the last key asked for: events come in runs of one connection, most skip both maps
  private lastLo = -1;
  private lastHi = -1;
  private lastP = 0;

  constructor(private readonly node: string, private readonly partitions: number) {}

  /** Partition of the conn_key whose low and high 32 bits are given. */
  of(lo: number, hi: number): number {
    if (lo === this.lastLo && hi === this.lastHi) return this.lastP;
    let m = this.cache.get(hi);
    const hit = m?.get(lo);
    if (hit !== undefined) return this.remember(lo, hi, hit);
    if (this.cached >= MAX_CACHED) {
      this.cache = new Map();
      this.cached = 0;
      m = undefined;
    }
    const p = partitionOf(this.node, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0), this.partitions);
    if (!m) this.cache.set(hi, (m = new Map()));
    m.set(lo, p);
    this.cached++;
    return this.remember(lo, hi, p);
  }

  private remember(lo: number, hi: number, p: number): number {
    this.lastLo = lo;
    this.lastHi = hi;
    return (this.lastP = p);
  }
}

/** Partition of `connKey` (the shared partitionOf). */
export function connPartition(node: string, connKey: bigint, partitions: number): number {
  return partitionOf(node, connKey, partitions);
}
