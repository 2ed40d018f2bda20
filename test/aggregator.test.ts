// The aggregator end to end with real servers: RecordBatches on the real JetStream stream →
// `wirescope aggregator` (a real process) → real influxd 1.6 (v1 /write transport) → InfluxQL.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/nats-core";
import { windowStart } from "@wirescope/aggregator";
import { makeRecord, exactQuantile } from "@wirescope/aggregator/test-support/records";
import { startNats, startInflux, waitFor, type TestServer } from "./support/index.js";
import { startAggregator, publishRecords, natsConnect, rows, pastWindow, type AggregatorProc } from "./aggregator-support.js";

const WINDOW = 2000;
const DB = "agg_exact";

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe("aggregator into InfluxDB", { timeout: 120_000 }, () => {
  let nats: TestServer;
  let influx: TestServer;
  let agg: AggregatorProc;
  let nc: NatsConnection;

  before(async () => {
    nats = await startNats({ jetstream: true });
    influx = await startInflux();
    agg = await startAggregator(nats.url, influx.url, DB, ["--window-ms", String(WINDOW), "--grace-ms", "500", "--pipeline-every-ms", "1000", "--span-sample-rate", "1", "--span-budget", "0"]);
    nc = await natsConnect(nats.url);
  });
  after(async () => {
    await nc?.close();
    await agg?.stop();
    await influx?.stop();
    await nats?.stop();
  });

  it("writes exact counts, error counts and duration sums; percentiles within the sketch's 1%", async () => {
    const r = rng(42);
    const base = pastWindow(WINDOW, 60);
    const server = { service: "api", address: "10.1.0.2", port: 8080, pid: 11 };
    const client = { service: "web", address: "10.1.0.1", port: 41000, pid: 12 };
    const recs = [];
    // exact[window][status_class] = durations
    const exact = new Map<string, { d: number[]; errors: number }>();
    for (let i = 0; i < 3000; i++) {
      const start = base + Math.floor(r() * 5 * WINDOW);
      const d = Math.round((1 + Math.exp(r() * 7)) * 1000) / 1000; // 2 ms .. ~1.1 s
      const err = r() < 0.08;
      recs.push(makeRecord({ startMs: start, durationMs: d, resource: `/orders/${i}`, status: err ? 500 : 200, server, client, connKey: BigInt(i) }));
      const k = `${windowStart(start + d, WINDOW)}|${err ? "5xx" : "2xx"}`;
      let e = exact.get(k);
      if (!e) exact.set(k, (e = { d: [], errors: 0 }));
      e.d.push(d);
      if (err) e.errors++;
    }
    // The parser emits a record when its response completes: in end-time order per connection.
    recs.sort((a, b) => Number(a.startNs + a.durationNs - (b.startNs + b.durationNs)));
    await publishRecords(nc, recs, 250);

    await waitFor(async () => {
      const [row] = await rows(influx.url, DB, `SELECT sum(requests) FROM red WHERE service = 'api' AND role = 'server'`);
      return row?.sum === 3000;
    }, { timeoutMs: 60_000, intervalMs: 500, what: "3000 requests in InfluxDB" });

    const got = await rows(influx.url, DB, `SELECT requests, errors, duration_sum_ms, p50_ms, p90_ms, p99_ms, max_ms, resource, status_class FROM red WHERE service = 'api' AND role = 'server'`);
    assert.equal(got.length, exact.size, "one point per window and status class");
    for (const g of got) {
      const t = Date.parse(g.time as string);
      const e = exact.get(`${t}|${g.status_class}`);
      assert.ok(e, `unexpected point ${t} ${g.status_class}`);
      assert.equal(g.resource, "/orders/{id}");
      assert.equal(g.requests, e.d.length);
      assert.equal(g.errors, g.status_class === "5xx" ? e.d.length : 0);
      const sum = e.d.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs((g.duration_sum_ms as number) - sum) <= 1e-9 * sum + 0.001, `sum ${g.duration_sum_ms} vs ${sum}`);
      const sorted = [...e.d].sort((a, b) => a - b);
      assert.equal(g.max_ms, sorted[sorted.length - 1]);
      for (const [q, f] of [[0.5, "p50_ms"], [0.9, "p90_ms"], [0.99, "p99_ms"]] as const) {
        const x = exactQuantile(sorted, q);
        assert.ok(Math.abs((g[f] as number) - x) <= 0.01 * x + 0.001, `${f} ${g[f]} vs exact ${x}`);
      }
    }
    // Histogram: cumulative, +Inf equals requests, each bucket equals the exact count.
    const hist = await rows(influx.url, DB, `SELECT count, le, status_class FROM latency_hist WHERE service = 'api' AND role = 'server'`);
    assert.equal(hist.length, exact.size * 16);
    for (const h of hist) {
      const e = exact.get(`${Date.parse(h.time as string)}|${h.status_class}`)!;
      const le = h.le === "+Inf" ? Infinity : Number(h.le);
      assert.equal(h.count, e.d.filter((d) => d <= le).length, `le=${h.le}`);
    }
    // Service map: web -> api, all requests.
    const [edge] = await rows(influx.url, DB, `SELECT sum(requests), sum(errors) FROM edges WHERE client = 'web' AND server = 'api' AND protocol = 'http'`);
    assert.equal(edge!.sum, 3000);
    // Spans: one per record (sample rate 1), linked by nothing here (no client side): roots.
    const [spans] = await rows(influx.url, DB, `SELECT count(duration_ms) FROM spans WHERE service = 'api' AND kind = 'server'`);
    assert.equal(spans!.count, 3000);
  });

  it("keeps series bounded: 10,000 distinct numeric paths become one templated resource", async () => {
    const base = pastWindow(WINDOW, 40);
    const server = { service: "paths", address: "10.1.0.3", port: 80, pid: 13 };
    const recs = Array.from({ length: 10_000 }, (_, i) => makeRecord({ startMs: base + (i % 1500), durationMs: 1 + (i % 7), resource: `/users/${100000 + i * 13}/profile?tab=${i}`, status: 200, server }));
    await publishRecords(nc, recs, 500);
    await waitFor(async () => {
      const [row] = await rows(influx.url, DB, `SELECT sum(requests) FROM red WHERE service = 'paths'`);
      return row?.sum === 10_000;
    }, { timeoutMs: 60_000, intervalMs: 500, what: "10000 requests of service paths" });
    const tv = (await rows(influx.url, DB, `SHOW TAG VALUES FROM red WITH KEY = resource WHERE service = 'paths'`)).map((x) => x.value);
    assert.deepEqual(tv, ["/users/{id}/profile"]);
    const series = await rows(influx.url, DB, `SHOW SERIES FROM red WHERE service = 'paths'`);
    assert.equal(series.length, 1);
  });

  it("reports itself in the pipeline measurement and through Status", async () => {
    await waitFor(async () => {
      const [row] = await rows(influx.url, DB, `SELECT sum(records_in), sum(points_out) FROM pipeline WHERE component = 'aggregator'`);
      return (row?.sum as number) >= 13_000;
    }, { timeoutMs: 30_000, intervalMs: 500, what: "pipeline points" });
    const c = await agg.status();
    assert.equal(c.drops_late, 0);
    assert.equal(c.records_in, 13_000);
    assert.equal(c.records_accepted, 13_000);
    assert.ok(c.points_out! > 0);
    assert.equal(c.drops_influx_buffer, 0);
  });
});
