// Which partitions a replica owns (parsers: raw partitions; aggregators: record partitions):
// rendezvous (highest-random-weight) hashing from partition.ts over the current member list. Every replica computes the same owner
// for a partition with no coordinator; a join takes only the partitions where the newcomer now
// weighs most, a leave moves only the leaver's partitions.
import { rendezvousOwner } from "./partition.js";

/** The member that owns partition `p`, or undefined when there are no members. */
export function ownerOf(p: number, members: readonly string[]): string | undefined {
  return rendezvousOwner(p, members);
}

/** The partitions of 0..partitions-1 that `self` owns among `members` (self need not be listed). */
export function ownedPartitions(self: string, members: readonly string[], partitions: number): Set<number> {
  const all = members.includes(self) ? members : [...members, self];
  const out = new Set<number>();
  for (let p = 0; p < partitions; p++) if (rendezvousOwner(p, all) === self) out.add(p);
  return out;
}

/**
 * What a replica owns, for `wirescope status`: "22/64: 0-3,7,9-12" (count of total, then the
 * partitions as ranges). Parsers and aggregators both report it as info `partitions_owned`.
 */
export function describePartitions(owned: ReadonlySet<number>, total: number): string {
  const xs = [...owned].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < xs.length; ) {
    let j = i;
    while (j + 1 < xs.length && xs[j + 1] === xs[j]! + 1) j++;
    parts.push(i === j ? String(xs[i]) : `${xs[i]}-${xs[j]}`);
    i = j + 1;
  }
  return `${xs.length}/${total}${parts.length ? ": " + parts.join(",") : ""}`;
}
