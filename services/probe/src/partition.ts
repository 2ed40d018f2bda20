// conn_key -> partition. FNV-1a 32-bit over "<node>/<conn_key>", the hash @wirescope/common
// documents for partitionOf(node, connKey, P); the parser never recomputes it (it owns partition
// numbers), so this only has to be stable within one probe.
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export function connPartition(node: string, connKey: bigint, partitions: number): number {
  const s = `${node}/${connKey}`;
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i) & 0xff;
    h = Math.imul(h, FNV_PRIME) >>> 0;
  }
  return h % partitions;
}
