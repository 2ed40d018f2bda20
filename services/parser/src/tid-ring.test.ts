import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MAX_TIDS, TidRing } from "./tid-ring.js";

describe("TidRing", () => {
  it("finds the thread of an event by its exact timestamp, newest first, 0 when unknown", () => {
    const r = new TidRing();
    r.add(10n, 1);
    r.add(20n, 2);
    r.add(10n, 3); // the same timestamp again: the newer wins
    r.add(30n, 0); // unknown thread: not remembered
    assert.equal(r.get(10n), 3);
    assert.equal(r.get(20n), 2);
    assert.equal(r.get(30n), 0);
    assert.equal(r.get(15n), 0);
  });

  it("remembers only the last MAX_TIDS events", () => {
    const r = new TidRing();
    const n = MAX_TIDS * 3 + 7;
    for (let i = 1; i <= n; i++) r.add(BigInt(i), i);
    for (let i = n - MAX_TIDS + 1; i <= n; i++) assert.equal(r.get(BigInt(i)), i);
    assert.equal(r.get(BigInt(n - MAX_TIDS)), 0);
    assert.equal(r.get(1n), 0);
  });

  it("finds a recent request in a step or two, however many came before (100,000 on one connection)", () => {
    const r = new TidRing();
    for (let i = 1; i <= 100_000; i++) {
      r.add(BigInt(i) * 10n, (i % 1000) + 1);
      r.add(BigInt(i) * 10n + 1n, 7); // a second event of the same request
      assert.equal(r.get(BigInt(i) * 10n), (i % 1000) + 1);
    }
    assert.equal(r.steps, 2 * 100_000, "two slots compared per lookup");
  });

  it("looks up as the ring was `skip` events ago: a record handed back late finds what it would have found at once", () => {
    const r = new TidRing();
    r.add(10n, 1);
    r.add(20n, 2);
    const mark = r.added;
    r.add(10n, 3);
    r.add(30n, 0); // not remembered: not counted either
    r.add(40n, 4);
    assert.equal(r.get(10n), 3);
    assert.equal(r.get(10n, r.added - mark), 1);
    assert.equal(r.get(40n, r.added - mark), 0);
    const steps = r.steps;
    assert.equal(r.get(20n, r.added - mark), 2);
    assert.equal(r.steps - steps, 1, "the skipped slots are not compared");
  });
});
