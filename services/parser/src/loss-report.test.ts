import { test } from "node:test";
import assert from "node:assert/strict";
import { isLossCounter, LossReport } from "./loss-report.js";

test("LossReport: each written entry carries what the loss counters grew since the last written one, nothing twice, nothing lost on a failed write", () => {
  const r = new LossReport();
  const c: Record<string, number> = { records_published: 900, "requests_missed.gap": 3, "raw_batches_missed.gap": 1, "conn_dropped.unclaimed": 7, "conn_dropped.moved": 2, "plugin_errors.http1": 4 };
  const first = r.pending(Object.entries(c));
  assert.deepEqual(first, { "requests_missed.gap": 3, "raw_batches_missed.gap": 1, "conn_dropped.moved": 2 }, "losses only (not traffic nobody decodes, not decoder errors)");
  // the entry's put failed: the same again, plus what grew meanwhile
  c["requests_missed.gap"] = 5;
  const second = r.pending(Object.entries(c));
  assert.deepEqual(second, { "requests_missed.gap": 5, "raw_batches_missed.gap": 1, "conn_dropped.moved": 2 });
  r.written(second);
  assert.equal(r.pending(Object.entries(c)), undefined, "nothing grew since: no losses in the entry");
  c["records_dropped.publish_failed"] = 10;
  c["plugin_drops.kafka"] = 1;
  const third = r.pending(Object.entries(c));
  assert.deepEqual(third, { "records_dropped.publish_failed": 10, "plugin_drops.kafka": 1 });
  r.written(third);
  r.written(undefined);
  assert.equal(r.pending(Object.entries(c)), undefined);
});

test("the loss counters by name", () => {
  for (const k of ["records_dropped.malformed", "raw_batches_missed.handover", "requests_missed.gap", "raw_drops_sub_queue_full", "probe_drops.ringbuf_full", "plugin_drops.http1", "plugin_bytes_dropped.http1", "conn_dropped.limit_conns"]) assert.ok(isLossCounter(k), k);
  for (const k of ["conn_dropped.unclaimed", "records_published", "plugin_errors.http1", "raw_batches_dropped.not_owner", "records_dropped_x", "gaps"]) assert.ok(!isLossCounter(k), k);
});
