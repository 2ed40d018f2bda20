import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseAggregatorArgs } from "./options.js";

describe("parseAggregatorArgs", () => {
  it("reads flags in both forms", () => {
    const o = parseAggregatorArgs(["--window-ms=5000", "--span-sample-rate", "0.5", "--no-spans", "--max-buffer-lines", "1000", "--durable", "d2"]);
    assert.equal(o.core.windowMs, 5000);
    assert.equal(o.core.spanSampleRate, 0.5);
    assert.equal(o.core.spans, false);
    assert.equal(o.writer.maxBufferLines, 1000);
    assert.equal(o.durable, "d2");
    assert.equal(o.core.spanBudget, 500, "the span budget's default");
    assert.equal(parseAggregatorArgs(["--span-budget", "0"]).core.spanBudget, 0);
    assert.equal(parseAggregatorArgs([], { WIRESCOPE_AGGREGATOR_SPAN_BUDGET: "2000" }).core.spanBudget, 2000);
  });
  it("refuses unknown flags and bad values with a clear message", () => {
    assert.throws(() => parseAggregatorArgs(["--nope"]), /unknown flag --nope/);
    assert.throws(() => parseAggregatorArgs(["--window-ms", "abc"]), /--window-ms expects a number/);
    assert.throws(() => parseAggregatorArgs(["--span-sample-rate=2"]), /spanSampleRate must be in/);
    assert.throws(() => parseAggregatorArgs(["--grace-ms"]), /--grace-ms: missing value/);
    assert.throws(() => parseAggregatorArgs(["--span-budget=-1"]), /spanBudget must be >= 0/);
  });
});
