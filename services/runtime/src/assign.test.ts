import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { describePartitions, ownerOf, ownedPartitions } from "./assign.js";

describe("ownedPartitions", () => {
  it("gives every partition to a lone replica", () => {
    assert.equal(ownedPartitions("a", ["a"], 64).size, 64);
    assert.equal(ownedPartitions("a", [], 64).size, 64);
  });

  it("splits partitions so that each has exactly one owner", () => {
    const members = ["p-1", "p-2", "p-3"];
    const sets = members.map((m) => ownedPartitions(m, members, 64));
    const total = sets.reduce((n, s) => n + s.size, 0);
    assert.equal(total, 64);
    for (let p = 0; p < 64; p++) assert.equal(sets.filter((s) => s.has(p)).length, 1, `partition ${p}`);
    for (const s of sets) assert.ok(s.size > 8, `uneven split: ${s.size}`);
  });

  it("moves only the leaver's partitions when a member leaves", () => {
    const before = ["a", "b", "c", "d"];
    const after = ["a", "b", "d"];
    for (let p = 0; p < 256; p++) {
      const o1 = ownerOf(p, before)!;
      const o2 = ownerOf(p, after)!;
      if (o1 !== "c") assert.equal(o2, o1, `partition ${p} moved needlessly`);
    }
  });

  it("moves only partitions to the joiner when a member joins", () => {
    const before = ["a", "b"];
    const after = ["a", "b", "z"];
    let moved = 0;
    for (let p = 0; p < 256; p++) {
      const o1 = ownerOf(p, before)!;
      const o2 = ownerOf(p, after)!;
      if (o1 !== o2) {
        assert.equal(o2, "z");
        moved++;
      }
    }
    assert.ok(moved > 40 && moved < 130, `moved ${moved}`);
  });

  it("does not depend on member order", () => {
    for (let p = 0; p < 64; p++) assert.equal(ownerOf(p, ["x", "y", "z"]), ownerOf(p, ["z", "x", "y"]));
  });
});

describe("describePartitions", () => {
  it("counts the partitions and lists them as ranges", () => {
    assert.equal(describePartitions(new Set([9, 0, 1, 2, 3, 7, 10, 11, 12]), 64), "9/64: 0-3,7,9-12");
    assert.equal(describePartitions(new Set([5]), 64), "1/64: 5");
    assert.equal(describePartitions(new Set(), 64), "0/64");
  });
});
