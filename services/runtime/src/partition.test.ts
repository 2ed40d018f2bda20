import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { fnv1a32, partitionOf, rendezvousOwner, rendezvousAssign } from "./partition.js";

describe("fnv1a32", () => {
  it("matches the published FNV-1a 32-bit test vectors", () => {
    assert.equal(fnv1a32(""), 0x811c9dc5);
    assert.equal(fnv1a32("a"), 0xe40c292c);
    assert.equal(fnv1a32("foobar"), 0xbf9cf968);
  });
});

describe("partitionOf", () => {
  it("is FNV-1a of node/connKey mod P, stable across calls", () => {
    assert.equal(partitionOf("node-a", 42n, 64), fnv1a32("node-a/42") % 64);
    assert.equal(partitionOf("node-a", 0xffffffffffffffffn, 64), fnv1a32("node-a/18446744073709551615") % 64);
    assert.equal(partitionOf("node-a", 42n, 1), 0);
  });
  it("depends on the node (conn keys are unique per node only)", () => {
    const differs = Array.from({ length: 50 }, (_, i) => BigInt(i)).some((k) => partitionOf("a", k, 64) !== partitionOf("b", k, 64));
    assert.ok(differs);
  });
  it("spreads sequential keys over every partition", () => {
    const seen = new Set<number>();
    for (let k = 0n; k < 5000n; k++) seen.add(partitionOf("n", k, 64));
    assert.equal(seen.size, 64);
  });
  it("rejects a partition count below 1", () => {
    assert.throws(() => partitionOf("n", 1n, 0), RangeError);
  });
});

describe("rendezvousAssign", () => {
  const members = ["parser-a", "parser-b", "parser-c"];
  it("gives every slot exactly one owner, roughly evenly", () => {
    const a = rendezvousAssign(64, members);
    const all = [...a.values()].flat().sort((x, y) => x - y);
    assert.deepEqual(all, Array.from({ length: 64 }, (_, i) => i));
    for (const m of members) assert.ok((a.get(m)?.length ?? 0) >= 10, `${m} owns ${a.get(m)?.length}`);
  });
  it("does not depend on member order", () => {
    assert.deepEqual(rendezvousAssign(64, members), rendezvousAssign(64, [...members].reverse()));
  });
  it("moves only the leaving member's slots", () => {
    const before = rendezvousAssign(64, members);
    const gone = new Set(before.get("parser-b"));
    for (let s = 0; s < 64; s++) {
      const now = rendezvousOwner(s, ["parser-a", "parser-c"]);
      if (!gone.has(s)) assert.equal(now, rendezvousOwner(s, members), `slot ${s} moved`);
    }
  });
  it("has no owner without members", () => {
    assert.equal(rendezvousOwner(3, []), undefined);
    assert.equal(rendezvousAssign(8, []).size, 0);
  });
});
