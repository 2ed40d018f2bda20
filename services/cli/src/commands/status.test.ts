import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { keyCounters, formatUptime, formatTable } from "./status.js";

describe("keyCounters", () => {
  it("puts non-zero losses first, then throughput, zeros last", () => {
    const got = keyCounters({ a_gauge: 5, drops_queue_full: 3, records_published: 100, drops_decode: 0, events_in: 7 }, 4).map(([k]) => k);
    assert.deepEqual(got, ["drops_queue_full", "events_in", "records_published", "a_gauge"]);
  });
});

describe("formatUptime", () => {
  it("reads like a person would say it", () => {
    assert.equal(formatUptime(undefined), "-");
    assert.equal(formatUptime(800), "800ms");
    assert.equal(formatUptime(62_000), "1m 2s");
    assert.equal(formatUptime(3 * 86_400_000 + 4 * 3_600_000), "3d 4h");
  });
});

describe("formatTable", () => {
  it("aligns columns and shows warnings and errors", () => {
    const out = formatTable([
      { component: "parser", instance: "p-1", address: "127.0.0.1:7702", health: "SERVING", uptimeMs: 5000, counters: { records_published: 3 }, info: {}, warnings: ["placeholder"] },
      { component: "aggregator", instance: "", address: "127.0.0.1:7703", health: "UNREACHABLE", counters: {}, info: {}, warnings: [], error: "connection refused" },
    ]);
    const lines = out.trimEnd().split("\n");
    assert.equal(lines.length, 3);
    assert.equal(lines[0].indexOf("ADDRESS"), lines[1].indexOf("127.0.0.1:7702"));
    assert.match(lines[1], /records_published=3 ! placeholder$/);
    assert.match(lines[2], /UNREACHABLE\s+-\s+error: connection refused$/);
  });
});
