import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ParserWatermarks } from "./parser-watermarks.js";

describe("ParserWatermarks", () => {
  it("gives the lowest watermark of the parsers heard from within the hold, Infinity with none", () => {
    const m = new ParserWatermarks(20_000);
    assert.equal(m.lowest(1000), Infinity, "no parser: nothing known, nothing held");
    m.heard("a", 5000, 1000);
    m.heard("b", 3000, 1000);
    assert.equal(m.lowest(1000), 3000);
    assert.equal(m.watched(1000), 2);
    // b catches up: its latest heartbeat counts, not its lowest
    m.heard("b", 9000, 2000);
    assert.equal(m.lowest(2000), 5000);
    // a left (its entry deleted: stopped, or its successor cleaned it up)
    m.left("a");
    assert.equal(m.lowest(2000), 9000);
  });

  it("forgets a parser silent for longer than the hold (killed, or blocked that long)", () => {
    const m = new ParserWatermarks(20_000);
    m.heard("dead", 1000, 1000);
    m.heard("live", 30_000, 1000);
    assert.equal(m.lowest(21_000), 1000, "silent for exactly the hold: still held");
    m.heard("live", 31_000, 21_000);
    assert.equal(m.lowest(21_001), 31_000, "past the hold: forgotten");
    assert.equal(m.watched(21_001), 1);
  });
});
