// Rendezvous (highest-random-weight) assignment of raw partitions to parser replicas.
//
// Every replica computes the same owner for a partition from the same member list, with no
// coordinator: owner(p) = argmax over members m of weight(m, p). When a member joins, it takes
// exactly the partitions where it now has the highest weight; when one leaves, only its own
// partitions move (each to the member with the next-highest weight). Nothing else moves.

/** 32-bit FNV-1a over a string, then a murmur3 finaliser: cheap and well mixed. */
export function hashString(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return fmix32(h);
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Weight of member `id` for partition `p`; ties (astronomically rare) break on the id. */
export function rendezvousWeight(id: string, p: number): number {
  return fmix32(hashString(id, 0x9e3779b9) ^ Math.imul(p + 1, 0x27d4eb2d));
}

/** The member that owns partition `p`, or undefined when there are no members. */
export function ownerOf(p: number, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestW = -1;
  for (const m of members) {
    const w = rendezvousWeight(m, p);
    if (w > bestW || (w === bestW && best !== undefined && m < best)) {
      best = m;
      bestW = w;
    }
  }
  return best;
}

/** The partitions of 0..partitions-1 that `self` owns among `members` (self need not be listed). */
export function ownedPartitions(self: string, members: readonly string[], partitions: number): Set<number> {
  const all = members.includes(self) ? members : [...members, self];
  const out = new Set<number>();
  for (let p = 0; p < partitions; p++) if (ownerOf(p, all) === self) out.add(p);
  return out;
}
