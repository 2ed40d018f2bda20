import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Generations } from "./generations.js";

/** Lets node:test's timeout fire: it cannot stop a test that never yields. */
const yieldToTimers = () => new Promise<void>((r) => setImmediate(r));

describe("Generations", () => {
  it("finds what was set within the last `half` new keys, and holds at most 2 × half", () => {
    const g = new Generations<number, string>(4);
    for (let i = 0; i < 10; i++) g.set(i, `v${i}`);
    // young {8, 9}, old {4, 5, 6, 7}: 0-3 forgotten when 4-7 became old
    assert.deepEqual([...g.keys()], [4, 5, 6, 7, 8, 9]);
    for (let i = 6; i < 10; i++) assert.equal(g.get(i), `v${i}`);
    assert.equal(g.get(3), undefined);
    assert.ok(g.size <= 8);
    g.set(5, "new");
    assert.equal(g.get(5), "new", "the young value shadows the old");
    assert.equal(g.has(5), true);
    assert.equal(g.delete(5), true);
    assert.equal(g.has(5), false, "deleted from both generations");
    assert.equal(g.delete(5), false);
  });

  it("touch keeps a key read from the old generation through the next turn", () => {
    const g = new Generations<string, number>(2);
    g.set("a", 1);
    g.set("b", 2);
    g.set("c", 3); // young {c}, old {a, b}
    g.touch("a"); // young {c, a}, old {b}
    g.set("d", 4); // young full: young {d}, old {c, a}
    assert.equal(g.get("a"), 1);
    assert.equal(g.get("b"), undefined);
    g.touch("zz");
    assert.equal(g.has("zz"), false, "touching an unknown key adds nothing");
  });

  it("refuses a bound below 1", () => {
    assert.throws(() => new Generations(0), RangeError);
  });

  it("sets a million new keys past its bound in bounded time", { timeout: 10_000 }, async () => {
    // One Map evicting its oldest key per new key (`keys().next()` on a Map that deletes) takes
    // ~10-35 µs per key at this size (about half a minute for this loop); this takes about one.
    const g = new Generations<string, number>(32_768);
    for (let i = 0; i < 1_000_000; i++) {
      g.set(`k${i}`, i);
      if (i % 10_000 === 0) await yieldToTimers();
    }
    assert.equal(g.get("k999999"), 999_999);
    assert.equal(g.get(`k${1_000_000 - 32_768}`), 1_000_000 - 32_768);
    assert.equal(g.get("k0"), undefined);
    assert.ok(g.size <= 65_536);
  });
});
