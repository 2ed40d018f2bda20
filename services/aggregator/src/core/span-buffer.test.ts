// The span buffer: spans wait for their window's close (window + grace), so at the highest
// lossless rate the default bound must hold that much; past a bound, every span left out is counted.
// Count-based: records carry their own times, the clock passed in is the records' end.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Aggregator } from "./aggregator.js";
import { defaultCoreOptions } from "./options.js";
import { makeRecord } from "../test-support/records.js";

const W0 = 1_700_000_000_000; // window-aligned

/**
 * `rate` requests/s over `seconds` of event time from W0, on 16 keep-alive connections of one
 * traced client process to one traced server: a client and a server record per request, handed to
 * the aggregator in end order in batches of 20 ms (as the parser flushes), windows closed as
 * event time passes them (as the service's tick does). Returns the most spans buffered at once.
 */
function burst(agg: Aggregator, rate: number, seconds: number): number {
  const server = { address: "127.0.0.1", port: 18090, pid: 2, name: "node" };
  const clients = Array.from({ length: 16 }, (_, i) => ({ address: "127.0.0.1", port: 40000 + i, pid: 1, name: "h2load" }));
  const perBatch = rate / 50;
  let peak = 0;
  for (let b = 0; b < seconds * 50; b++) {
    const batch: ReturnType<typeof makeRecord>[] = [];
    for (let k = 0; k < perBatch; k++) {
      const j = b * perBatch + k;
      const t = W0 + (j * 1000) / rate;
      const client = clients[j % 16]!;
      batch.push(
        makeRecord({ startMs: t, durationMs: 0.3, role: "client", client, server, tid: 1, connKey: BigInt(j % 16) }),
        makeRecord({ startMs: t + 0.05, durationMs: 0.2, role: "server", client, server, tid: 2, connKey: BigInt(100 + (j % 16)) }),
      );
    }
    const now = W0 + (b + 1) * 20;
    agg.ingest(batch, now);
    peak = Math.max(peak, agg.bufferedSpanCount);
    agg.closeDue(now);
  }
  return peak;
}

describe("span buffer", () => {
  it("drops no span under 20,000 requests/s (40,000 records/s) for a window and its grace, with the default bound", () => {
    const agg = new Aggregator();
    const { windowMs, graceMs } = defaultCoreOptions;
    const seconds = (windowMs + graceMs) / 1000 + 1;
    const peak = burst(agg, 20_000, seconds);
    const records = 2 * 20_000 * seconds;
    // The first window closes only once event time is past its end + grace: everything until then waits.
    assert.ok(peak >= 40_000 * (windowMs + graceMs) / 1000, `the buffer held a full window and its grace (${peak})`);
    agg.closeDue(W0 + 3_600_000, true);
    const c = agg.counters;
    assert.equal(c.recordsAccepted, records);
    assert.deepEqual(c.drops, { late: 0, redelivered: 0, future: 0, invalid: 0, cardinality_overflow: 0, span_buffer_full: 0, role_unknown: 0 });
    assert.equal(c.spansKept + c.spansDropped, records, "every record's span was linked and sampled");
    assert.equal(c.ambiguousTcp + c.ambiguousThread, 0);
    assert.equal(agg.bufferedSpanCount, 0);
  });

  it("counts every span past a bound, counts the requests anyway, and takes spans again once windows close", () => {
    const agg = new Aggregator({ maxBufferedSpans: 50_000 });
    burst(agg, 5_000, 16); // 160,000 records; 50,000 at most wait at once
    agg.closeDue(W0 + 3_600_000, true);
    const c = agg.counters;
    assert.equal(c.recordsAccepted, 160_000);
    assert.ok(c.drops.span_buffer_full > 0);
    assert.equal(c.spansKept + c.spansDropped + c.drops.span_buffer_full, 160_000, "a span is linked, sampled out or counted as dropped");
    // The first window (100,000 records) filled the bound; spans of later windows were taken again after its close.
    assert.ok(c.spansKept + c.spansDropped > 50_000, `spans taken after the first close (${c.spansKept + c.spansDropped})`);
    assert.equal(agg.bufferedSpanCount, 0);
  });
});
