// The span budget end to end: RecordBatches on the real JetStream stream → `wirescope aggregator`
// (a real process, --span-budget) → real influxd: the spans written stay within the budget per
// window, whole traces under a power-of-two fraction, counted; RED counts every record.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { makeRecord, hex16, unitFromHex, windowStart } from "@wirescope/aggregator";
import { waitFor } from "./support/index.js";
import { aggregatorSuite, publishRecords, rows, pastWindow } from "./aggregator-support.js";

const WINDOW = 2000;
const BUDGET = 50; // ordinary spans a second: 100 a 2 s window
const DB = "agg_span_budget";

describe("aggregator span budget into InfluxDB", { timeout: 120_000 }, () => {
  const s = aggregatorSuite(DB, ["--window-ms", String(WINDOW), "--grace-ms", "500", "--pipeline-every-ms", "1000", "--span-sample-rate", "1", "--slowest-per-series", "0", "--span-budget", String(BUDGET)]);

  it("writes at most the budget of spans per window, whole traces by trace id, and counts every request", async () => {
    let seed = 3;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    const base = pastWindow(WINDOW, 30);
    const server = { service: "api", address: "10.1.0.2", port: 8080, pid: 11 };
    const client = { service: "web", address: "10.1.0.1", port: 41000, pid: 12 };
    const recs = [];
    const sent = new Map<number, string[]>();
    for (let i = 0; i < 6000; i++) {
      const start = base + (i * (3 * WINDOW)) / 6000;
      const traceId = hex16(rnd(), rnd()) + hex16(rnd(), rnd());
      recs.push(makeRecord({ startMs: start, durationMs: 2, status: 200, server, client, connKey: BigInt(i), traceId, parentSpanId: "00f067aa0ba902b7" }));
      const w = windowStart(start + 2, WINDOW);
      sent.set(w, [...(sent.get(w) ?? []), traceId]);
    }
    await publishRecords(s.nc, recs, 250);

    await waitFor(async () => {
      const [row] = await rows(s.influx.url, DB, `SELECT sum(requests) FROM red WHERE service = 'api' AND role = 'server'`);
      return row?.sum === 6000;
    }, { timeoutMs: 60_000, intervalMs: 500, what: "6000 requests in InfluxDB" });

    // A span's window is the one of its end (start + duration); its point's time is its start.
    const spans = await rows(s.influx.url, DB, `SELECT trace_id, start_ms, duration_ms FROM spans`);
    const byWindow = new Map<number, string[]>();
    for (const s of spans) {
      const w = windowStart((s.start_ms as number) + (s.duration_ms as number), WINDOW);
      byWindow.set(w, [...(byWindow.get(w) ?? []), s.trace_id as string]);
    }
    let bound = 0;
    for (const [w, traces] of byWindow) {
      const all = sent.get(w) ?? [];
      assert.ok(traces.length <= (BUDGET * WINDOW) / 1000, `window ${w}: ${traces.length} spans, budget ${(BUDGET * WINDOW) / 1000}`);
      // The kept traces are exactly the window's traces under a power of two.
      const top = Math.max(...traces.map(unitFromHex));
      const fraction = 2 ** Math.ceil(Math.log2(top + 1e-12));
      assert.deepEqual([...traces].sort(), all.filter((t) => unitFromHex(t) < fraction).sort(), `window ${w}: the traces under ${fraction}`);
      if (all.length > (BUDGET * WINDOW) / 1000) {
        bound++;
        assert.ok(fraction < 1 && traces.length > 0, `window ${w}: ${traces.length} of ${all.length} at ${fraction}`);
      }
    }
    assert.ok(bound >= 3, `${bound} windows over the budget`);
    // The pipeline points (every second, deltas) count every kept span written.
    await waitFor(async () => (await rows(s.influx.url, DB, `SELECT sum(spans_kept) FROM pipeline`))[0]?.sum === spans.length, { timeoutMs: 20_000, intervalMs: 500, what: `spans_kept = ${spans.length} in the pipeline points` });
    const [p] = await rows(s.influx.url, DB, `SELECT sum(spans_over_budget) AS over, sum(spans_kept) AS kept, sum(spans_dropped) AS dropped, min(span_fraction) AS fraction FROM pipeline`);
    assert.equal((p!.kept as number) + (p!.dropped as number), 6000);
    assert.equal(p!.over, p!.dropped, "at rate 1 every span left out was left out by the budget");
    // A gauge of the `pipeline` point: written to 3 decimals (1/32 as 0.031).
    const f = p!.fraction as number;
    assert.ok(f < 1 && Math.abs(2 ** Math.round(Math.log2(f)) - f) <= 0.0005, `span_fraction while the budget bound: ${f}`);
  });
});
