// Connection key → partition, shared by the probe (which publishes on wirescope.raw.<p>) and
// anything that must agree with it; and rendezvous (highest-random-weight) hashing, which splits
// partitions among replicas with no coordinator and moves only a leaving replica's share.

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const utf8 = new TextEncoder();

/** 32-bit FNV-1a over the UTF-8 bytes of `s` (an unsigned integer). */
export function fnv1a32(s: string, basis = FNV_OFFSET): number {
  let h = basis >>> 0;
  const bytes = utf8.encode(s);
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, FNV_PRIME) >>> 0;
  }
  return h;
}

/**
 * The partition of a connection: FNV-1a 32 of "<node>/<connKey in decimal>" mod `partitions`.
 * The node is part of the key because conn keys are unique per node only.
 */
export function partitionOf(node: string, connKey: bigint, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1) throw new RangeError(`partitions must be a positive integer, got ${partitions}`);
  return fnv1a32(`${node}/${connKey}`) % partitions;
}

/** murmur3's 32-bit finaliser: spreads FNV's weak low bits over the whole word. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Weight of `member` for `slot` (e.g. a partition number): higher wins. */
export function rendezvousWeight(member: string, slot: number): number {
  return fmix32(fmix32(fnv1a32(member, (FNV_OFFSET ^ 0x9e3779b9) >>> 0)) ^ Math.imul(slot + 1, 0x27d4eb2d));
}

/** The member owning `slot`: highest weight, ties broken by the smaller id. Undefined if none. */
export function rendezvousOwner(slot: number, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestW = -1;
  for (const m of members) {
    const w = rendezvousWeight(m, slot);
    if (w > bestW || (w === bestW && best !== undefined && m < best)) {
      best = m;
      bestW = w;
    }
  }
  return best;
}

/** Owner of every slot 0..slots-1: a Map from member to its sorted slots (members with none omitted). */
export function rendezvousAssign(slots: number, members: readonly string[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (let s = 0; s < slots; s++) {
    const owner = rendezvousOwner(s, members);
    if (owner === undefined) continue;
    let list = out.get(owner);
    if (!list) out.set(owner, (list = []));
    list.push(s);
  }
  return out;
}

/**
 * The records partition of a record (`wirescope.records.<p>`): FNV-1a 32 of the service whose
 * series it feeds, mod `partitions`. That service is the observed end's: the client's for a
 * client-side record, the server's otherwise (the aggregator's `service` tag). All records of one
 * service, in both roles, share a partition, so the one aggregator instance owning it sees every
 * record of each of that service's series (exact percentiles and cardinality limits) and both
 * records of an in-process link (a server request and the calls its thread makes).
 */
export function recordPartitionOf(clientSide: boolean, clientService: string, serverService: string, partitions: number): number {
  return fnv1a32(clientSide ? clientService : serverService) % partitions;
}
