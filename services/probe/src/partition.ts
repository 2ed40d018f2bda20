// conn_key -> partition: FNV-1a 32-bit over the node name's UTF-8 bytes, a "/" and the 8
// little-endian bytes of the conn_key, modulo P. The parser never recomputes it (it owns
// partition numbers), so it only has to be stable within one probe; it works on the key's two
// u32 halves so the hot path needs no BigInt.
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function fnv(h: number, byte: number): number {
  return Math.imul(h ^ byte, FNV_PRIME) >>> 0;
}

export class PartitionHash {
  private readonly seed: number;

  constructor(node: string, private readonly partitions: number) {
    let h = FNV_OFFSET;
    for (const b of Buffer.from(`${node}/`, "utf8")) h = fnv(h, b);
    this.seed = h;
  }

  /** Partition of the conn_key whose low and high 32 bits are given. */
  of(lo: number, hi: number): number {
    let h = this.seed;
    for (let i = 0; i < 4; i++) h = fnv(h, (lo >>> (8 * i)) & 0xff);
    for (let i = 0; i < 4; i++) h = fnv(h, (hi >>> (8 * i)) & 0xff);
    return h % this.partitions;
  }
}

const cache = new Map<string, PartitionHash>();

/** Partition of `connKey` (same function as PartitionHash.of). */
export function connPartition(node: string, connKey: bigint, partitions: number): number {
  const id = `${partitions}/${node}`;
  let ph = cache.get(id);
  if (!ph) cache.set(id, (ph = new PartitionHash(node, partitions)));
  return ph.of(Number(connKey & 0xffffffffn), Number((connKey >> 32n) & 0xffffffffn));
}
