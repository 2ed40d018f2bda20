// Every InfluxQL query of every Grafana dashboard, run against a real influxd holding real data
// written by the real aggregator (records → JetStream → `wirescope aggregator` → InfluxDB).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import type { NatsConnection } from "nats";
import { makeRecord } from "@wirescope/aggregator";
import { allDashboards, interpolate, type InterpolateContext } from "@wirescope/grafana";
import { startNats, startInflux, waitFor, influxQuery, type TestServer } from "./support/index.js";
import { startAggregator, publishRecords, natsConnect, rows, pastWindow, type AggregatorProc } from "./aggregator-harness.js";

const WINDOW = 2000;
const DB = "agg_dash";

/** curl → front (http) → back (grpc) → db (mysql), every end traced, one request at t. */
function chain(t: number, i: number) {
  const user = { service: "curl", address: "127.0.0.1", port: 40000 + i, pid: 1 };
  const front = { service: "front", address: "127.0.0.1", port: 8080, pid: 2 };
  const frontOut = { service: "front", address: "127.0.0.1", port: 45000 + i, pid: 2 };
  const back = { service: "back", address: "127.0.0.1", port: 9090, pid: 3 };
  const backOut = { service: "back", address: "127.0.0.1", port: 50000 + i, pid: 3 };
  const db = { service: "db", address: "127.0.0.1", port: 3306, pid: 4 };
  const status = i % 10 === 0 ? 500 : 200;
  return [
    makeRecord({ startMs: t, durationMs: 10, role: "client", resource: `/api/items/${i}`, status, client: user, server: front, tid: 1, connKey: BigInt(i * 10 + 1) }),
    makeRecord({ startMs: t + 0.1, durationMs: 9.8, role: "server", resource: `/api/items/${i}`, status, client: user, server: front, tid: 2, connKey: BigInt(i * 10 + 2) }),
    makeRecord({ startMs: t + 1, durationMs: 7, role: "client", protocol: "grpc", operation: "Get", resource: "/shop.Items/Get", status: 0, client: frontOut, server: back, tid: 2, connKey: BigInt(i * 10 + 3) }),
    makeRecord({ startMs: t + 1.1, durationMs: 6.8, role: "server", protocol: "grpc", operation: "Get", resource: "/shop.Items/Get", status: 0, client: frontOut, server: back, tid: 3, connKey: BigInt(i * 10 + 4) }),
    makeRecord({ startMs: t + 2, durationMs: 3, role: "client", protocol: "mysql", operation: "SELECT", resource: `SELECT * FROM items WHERE id = ${i}`, client: backOut, server: db, tid: 3, connKey: BigInt(i * 10 + 5) }),
    makeRecord({ startMs: t + 2.1, durationMs: 2.8, role: "server", protocol: "mysql", operation: "SELECT", resource: `SELECT * FROM items WHERE id = ${i}`, client: backOut, server: db, tid: 4, connKey: BigInt(i * 10 + 6) }),
  ];
}

describe("Grafana dashboards against real data", { timeout: 120_000 }, () => {
  let nats: TestServer;
  let influx: TestServer;
  let agg: AggregatorProc;
  let nc: NatsConnection;
  let base = 0;

  before(async () => {
    nats = await startNats({ jetstream: true });
    influx = await startInflux();
    agg = await startAggregator(nats.url, influx.url, DB, ["--window-ms", String(WINDOW), "--grace-ms", "500", "--pipeline-every-ms", "500", "--span-sample-rate", "1"]);
    nc = await natsConnect(nats.url);
    base = pastWindow(WINDOW, 30);
    const recs = [];
    for (let i = 0; i < 200; i++) recs.push(...chain(base + i * 50, i));
    await publishRecords(nc, recs, 120);
    await waitFor(async () => (await rows(influx.url, DB, `SELECT sum(requests) FROM red WHERE service = 'db'`))[0]?.sum === 200, { timeoutMs: 60_000, intervalMs: 500, what: "chain records in InfluxDB" });
    await waitFor(async () => (await rows(influx.url, DB, `SELECT count(records_in) FROM pipeline`))[0] !== undefined, { timeoutMs: 20_000, intervalMs: 500, what: "pipeline points" });
  });
  after(async () => {
    await nc?.close();
    await agg?.stop();
    await influx?.stop();
    await nats?.stop();
  });

  async function run(q: string): Promise<{ series?: { name: string; columns: string[]; values: unknown[][]; tags?: Record<string, string> }[]; error?: string }> {
    const body = (await influxQuery(influx.url, q, DB)) as { results: { series?: { name: string; columns: string[]; values: unknown[][] }[]; error?: string }[] };
    return body.results[0]!;
  }

  it("every template variable query returns values", async () => {
    for (const d of Object.values(allDashboards())) {
      for (const v of d.templating.list) {
        if (v.type !== "query") continue;
        const q = interpolate(v.query as string, { fromMs: 0, toMs: 0, intervalMs: 10_000, vars: { service: "front", component: "aggregator" } });
        const r = await run(q);
        assert.equal(r.error, undefined, `${d.uid} $${v.name}: ${r.error}`);
        assert.ok((r.series?.[0]?.values.length ?? 0) > 0, `${d.uid} $${v.name} has values: ${q}`);
      }
    }
  });

  it("every panel query runs without error and returns data", async () => {
    const [traceRow] = await rows(influx.url, DB, `SELECT trace_id FROM spans WHERE service = 'db' LIMIT 1`);
    const ctx: InterpolateContext = {
      fromMs: base - 60_000,
      toMs: Date.now() + 60_000,
      intervalMs: 10_000,
      vars: { service: "$__all", role: "$__all", resource: "$__all", protocol: "$__all", component: "$__all", instance: "$__all", trace_id: traceRow!.trace_id as string },
    };
    let checked = 0;
    for (const d of Object.values(allDashboards())) {
      for (const p of d.panels) {
        for (const t of p.targets) {
          // Single-value variables get a concrete value, as Grafana would send.
          const vars = d.uid === "wirescope-operations" ? { ...ctx.vars, service: "front" } : ctx.vars;
          const q = interpolate(t.query, { ...ctx, vars });
          const r = await run(q);
          assert.equal(r.error, undefined, `${d.uid} / ${p.title} / ${t.refId}: ${r.error}\n${q}`);
          const n = (r.series ?? []).reduce((a, s) => a + s.values.length, 0);
          assert.ok(n > 0, `${d.uid} / ${p.title} / ${t.refId} returned no rows:\n${q}`);
          checked++;
        }
      }
    }
    assert.ok(checked >= 20, `checked ${checked} queries`);
  });

  it("the service map's node and edge frames have what Node Graph needs, with the right numbers", async () => {
    const ctx: InterpolateContext = { fromMs: base - 60_000, toMs: Date.now() + 60_000, intervalMs: 10_000, vars: { protocol: "$__all" } };
    const panel = allDashboards()["service-map"]!.panels.find((p) => p.type === "nodeGraph")!;
    const edgesQ = interpolate(panel.targets.find((t) => t.refId === "edges")!.query, ctx);
    const r = await run(edgesQ);
    const edges = (r.series ?? []).map((s) => ({ ...s.tags, ...Object.fromEntries(s.columns.map((c, i) => [c, s.values[0]![i]])) })) as Record<string, unknown>[];
    const byId = new Map(edges.map((e) => [e.id, e]));
    assert.deepEqual([...byId.keys()].sort(), ["back->db/mysql", "curl->front/http", "front->back/grpc"]);
    for (const e of edges) assert.equal(e.mainstat, 200, `${e.id} requests`);
    const nodes = await run(interpolate(panel.targets.find((t) => t.refId === "nodes")!.query, ctx));
    assert.deepEqual((nodes.series ?? []).map((s) => s.tags!.service).sort(), ["back", "curl", "db", "front"]);
  });

  it("the traces dashboard shows a whole linked trace", async () => {
    const [row] = await rows(influx.url, DB, `SELECT trace_id FROM spans WHERE service = 'db' LIMIT 1`);
    const panel = allDashboards().traces!.panels.find((p) => p.title.startsWith("Trace"))!;
    const q = interpolate(panel.targets[0]!.query, { fromMs: base - 60_000, toMs: Date.now() + 60_000, intervalMs: 10_000, vars: { trace_id: row!.trace_id as string } });
    const r = await run(q);
    const spans = (r.series ?? []).flatMap((s) => s.values.map((v) => ({ ...s.tags, ...Object.fromEntries(s.columns.map((c, i) => [c, v[i]])) }))) as Record<string, string>[];
    assert.equal(spans.length, 6, "curl, front (server, client), back (server, client), db");
    const roots = spans.filter((s) => s.parent_span_id === "");
    assert.equal(roots.length, 1);
    assert.equal(roots[0]!.service, "curl");
    const ids = new Set(spans.map((s) => s.span_id));
    for (const s of spans) if (s !== roots[0]) assert.ok(ids.has(s.parent_span_id), `${s.service}/${s.kind} parent inside the trace`);
  });
});
