import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { collapseSegments, guardValues } from "./collapse.js";

describe("collapseSegments", () => {
  it("collapses a segment with more distinct values than the threshold", () => {
    const paths = ["/u/alice/x", "/u/bob/x", "/u/carol/y", "/static/a.css"];
    const m = collapseSegments(paths, 2);
    assert.equal(m.get("/u/alice/x"), "/u/*/x");
    assert.equal(m.get("/u/carol/y"), "/u/*/y");
    assert.equal(m.get("/static/a.css"), "/static/a.css");
  });
  it("keeps segments under the threshold and {id}", () => {
    const m = collapseSegments(["/a/{id}", "/a/b", "/a/c"], 2);
    assert.equal(m.get("/a/{id}"), "/a/{id}");
    assert.equal(m.get("/a/b"), "/a/b");
  });
  it("is order-independent", () => {
    const paths = Array.from({ length: 30 }, (_, i) => `/p/n${i}/q${i % 3}`);
    const a = collapseSegments(paths, 10);
    const b = collapseSegments([...paths].reverse(), 10);
    assert.deepEqual([...a].sort(), [...b].sort());
    assert.equal(new Set(a.values()).size, 3);
  });
});

describe("guardValues", () => {
  it("keeps the heaviest limit-1 values and folds the rest into *", () => {
    const w = new Map(Array.from({ length: 10 }, (_, i) => [`v${i}`, i] as [string, number]));
    const { map, folded } = guardValues(w, 4);
    assert.equal(folded, 7);
    assert.deepEqual([...new Set(map.values())].sort(), ["*", "v7", "v8", "v9"]);
  });
  it("leaves small sets alone", () => {
    const { map, folded } = guardValues(new Map([["a", 1]]), 4);
    assert.equal(folded, 0);
    assert.equal(map.get("a"), "a");
  });
});
