import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DirectionStream, type Op } from "./reorder.js";

const te = new TextEncoder();
const td = new TextDecoder();
const limits = { maxPendingBytes: 1000, maxPendingEvents: 8 };

function show(ops: Op[]): string[] {
  return ops.map((o) => (o.kind === "data" ? `d:${td.decode(o.bytes)}` : `g:${o.len}`));
}

describe("DirectionStream", () => {
  it("delivers in-order events as they come", () => {
    const s = new DirectionStream(limits, true);
    const out: Op[] = [];
    s.push(0, te.encode("abc"), 3, 1n, 1, out);
    s.push(3, te.encode("de"), 2, 2n, 1, out);
    assert.deepEqual(show(out), ["d:abc", "d:de"]);
  });

  it("reorders events that arrive out of order", () => {
    const s = new DirectionStream(limits, true);
    const out: Op[] = [];
    s.push(3, te.encode("de"), 2, 2n, 1, out);
    assert.deepEqual(out, []);
    s.push(0, te.encode("abc"), 3, 1n, 1, out);
    assert.deepEqual(show(out), ["d:abc", "d:de"]);
  });

  it("turns a truncated payload into a gap of the missing tail", () => {
    const s = new DirectionStream(limits, true);
    const out: Op[] = [];
    s.push(0, te.encode("ab"), 10, 1n, 1, out);
    s.push(10, te.encode("z"), 1, 2n, 1, out);
    assert.deepEqual(show(out), ["d:ab", "g:8", "d:z"]);
  });

  it("declares a hole a gap when pending bytes pass the limit", () => {
    const s = new DirectionStream({ maxPendingBytes: 4, maxPendingEvents: 8 }, true);
    const out: Op[] = [];
    s.push(0, te.encode("a"), 1, 1n, 1, out);
    s.push(5, te.encode("xyz"), 3, 2n, 1, out);
    assert.deepEqual(show(out), ["d:a"]);
    s.push(8, te.encode("kl"), 2, 3n, 1, out);
    assert.deepEqual(show(out), ["d:a", "g:4", "d:xyz", "d:kl"]);
    assert.equal(s.pendingBytes, 0);
  });

  it("flushes holes as gaps on demand", () => {
    const s = new DirectionStream(limits, true);
    const out: Op[] = [];
    s.push(4, te.encode("q"), 1, 2n, 1, out);
    s.flush(out);
    assert.deepEqual(show(out), ["g:4", "d:q"]);
  });

  it("drops duplicates and trims overlaps", () => {
    const s = new DirectionStream(limits, true);
    const out: Op[] = [];
    s.push(0, te.encode("abcd"), 4, 1n, 1, out);
    s.push(0, te.encode("ab"), 2, 1n, 1, out);
    s.push(2, te.encode("cdef"), 4, 1n, 1, out);
    assert.deepEqual(show(out), ["d:abcd", "d:ef"]);
    assert.equal(s.duplicates, 1);
  });

  it("starts mid-stream at the first sequence seen when the open was not seen", () => {
    const s = new DirectionStream(limits, false);
    const out: Op[] = [];
    s.push(5000, te.encode("mid"), 3, 1n, 1, out);
    assert.deepEqual(show(out), ["d:mid"]);
  });
});
