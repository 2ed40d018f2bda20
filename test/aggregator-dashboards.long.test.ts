// Every InfluxQL query of every Grafana dashboard, run as Grafana would against a real influxd
// holding the demo shop's traffic: records captured from `wirescope up` with the demo
// (test/fixtures/demo-records.bin.gz, scripts/capture-records.mjs: 600 requests of the load
// generator through web → api → orders → MariaDB, Redis and Kafka), moved to the recent past and
// replayed through JetStream into the real `wirescope aggregator`.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/nats-core";
import { clone } from "@bufbuild/protobuf";
import { RecordSchema, Role, type Record as WRecord } from "@wirescope/wire";
import { makeRecord } from "@wirescope/aggregator/test-support/records";
import { allDashboards, interpolate, TRACE_FRAME_QUERY } from "@wirescope/grafana";
import { startNats, startInflux, waitFor, readRecordsFixture, DEMO_RECORDS, shiftRecords, influxRunner, checkDashboards, checkAlertQueries, resultRows, type TestServer, type InfluxRun, type CheckedQuery } from "./support/index.js";
import { startAggregator, publishRecords, natsConnect, rows } from "./aggregator-support.js";

const WINDOW = 10_000;
const DB = "agg_dash";
/** The demo's services in the capture (`wirescope up --demo-port 27380`). */
const S = { web: "web:27380", api: "api:27381", orders: "orders:27382", kafka: "kafka:27383", redis: "redis-server:27384", mariadb: "mariadbd:27385" };

describe("Grafana dashboards against the demo's data", { timeout: 150_000 }, () => {
  let nats: TestServer;
  let influx: TestServer;
  let agg: Awaited<ReturnType<typeof startAggregator>>;
  let nc: NatsConnection;
  let run: InfluxRun;
  let range = { fromMs: 0, toMs: 0 };
  let traceId = "";
  let checked: CheckedQuery[] = [];
  let records: WRecord[] = [];

  before(async () => {
    nats = await startNats({ jetstream: true });
    influx = await startInflux();
    agg = await startAggregator(nats.url, influx.url, DB, ["--window-ms", String(WINDOW), "--grace-ms", "500", "--pipeline-every-ms", "1000", "--span-sample-rate", "1", "--span-budget", "0"]);
    nc = await natsConnect(nats.url);
    records = readRecordsFixture(DEMO_RECORDS);
    // The capture ends in the past: every window closes by the wall clock once replayed.
    // (3 minutes ago: inside the 5-minute range of the alert rules' short window.)
    const shifted = shiftRecords(records, Date.now() - 3 * 60_000, WINDOW);
    range = { fromMs: shifted.startMs - 60_000, toMs: Date.now() + 60_000 };
    await publishRecords(nc, records, 200);
    await waitFor(async () => (await rows(influx.url, DB, `SELECT sum(requests) FROM red WHERE service = '${S.web}' AND role = 'server'`))[0]?.sum === 600, { timeoutMs: 90_000, intervalMs: 1000, what: "the demo's 600 requests to web in InfluxDB" });
    await waitFor(async () => (await rows(influx.url, DB, `SELECT sum(requests) FROM red WHERE service = '${S.mariadb}'`))[0]?.sum === 450, { timeoutMs: 60_000, intervalMs: 1000, what: "the database's requests written" });
    // Windows close in order, the last ones once the server reports the consumer idle after them.
    await waitFor(
      async () => {
        const c = await agg.status();
        return c.records_in === records.length && c.open_windows === 0 && c.held_batches === 0 && c.pending_lines === 0;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: "every window written" },
    );
    await waitFor(async () => (await rows(influx.url, DB, `SELECT count(records_in) FROM pipeline`))[0] !== undefined, { timeoutMs: 20_000, intervalMs: 500, what: "pipeline points" });
    run = influxRunner(influx.url, DB);
    // A trace that reaches the database: loadgen → web → api → orders → MariaDB.
    // (Concurrent requests on one Node.js thread leave some in-process links unresolved: those
    // traces stop short; most reach the load generator.)
    const fromLoadgen = new Set((await rows(influx.url, DB, `SELECT trace_id FROM spans WHERE service = 'loadgen'`)).map((r) => r.trace_id));
    const dbTraces = (await rows(influx.url, DB, `SELECT trace_id FROM spans WHERE service = '${S.mariadb}' AND kind = 'server'`)).map((r) => r.trace_id);
    const whole = dbTraces.filter((t) => fromLoadgen.has(t));
    assert.ok(whole.length > dbTraces.length / 2, `${whole.length} of ${dbTraces.length} database spans in traces from the load generator`);
    traceId = String(whole[0]);
    checked = await checkDashboards(run, { ...range, values: { trace_id: traceId, service: S.web } });
  });
  after(async () => {
    await nc?.close();
    await agg?.stop();
    await influx?.stop();
    await nats?.stop();
  });

  it("every variable and panel query returns rows with the columns and tags its panel uses", () => {
    const panels = Object.values(allDashboards()).reduce((a, d) => a + d.panels.reduce((b, p) => b + p.targets.length, 0), 0);
    assert.equal(checked.length, panels);
    assert.ok(checked.length >= 25, `checked ${checked.length} queries`);
  });

  it("every InfluxQL query of the default alert rules returns series labelled as the rule's annotations need", async () => {
    const alerts = await checkAlertQueries(run, Date.now());
    assert.equal(alerts.length, 7, "2 error-ratio, 4 histogram and 1 drops query");
    // The error ratio of the last hour, per service, is the demo's: web fails some orders.
    const hour = resultRows(alerts.find((a) => a.refId === "H")!.result);
    const web = hour.find((r) => r.service === S.web)!;
    const [counts] = await rows(influx.url, DB, `SELECT sum(errors) AS e, sum(requests) AS n FROM red WHERE role = 'server' AND service = '${S.web}'`);
    assert.ok(Number(counts!.e) > 0);
    assert.ok(Math.abs(Number(web.sum_sum) - Number(counts!.e) / Number(counts!.n)) < 1e-9, JSON.stringify(web));
  });

  it("the node and namespace variables list the capture's node and the no-namespace marker", async () => {
    const d = allDashboards()["red-overview"]!;
    const vals = async (name: string) => {
      const v = d.templating.list.find((x) => x.name === name)!;
      const r = await run(interpolate(v.query as string, { ...range, intervalMs: WINDOW, vars: { node: "$__all" } }));
      return resultRows(r).map((x) => x.value);
    };
    assert.deepEqual(await vals("node"), ["vm"]);
    assert.deepEqual(await vals("namespace"), ["-"], "outside Kubernetes");
  });

  it("the service map's node and edge frames name every caller and callee, with the servers' counts", () => {
    const q = (refId: string) => checked.find((c) => c.dashboard === "wirescope-service-map" && c.panel === "Service map" && c.refId === refId)!.result;
    const edges = new Map(resultRows(q("edges")).map((e) => [String(e.id), e.mainstat]));
    assert.deepEqual(
      Object.fromEntries([...edges].sort()),
      Object.fromEntries(
        [
          [`api:27381->orders:27382/grpc`, 446],
          [`api:27381->redis-server:27384/redis`, 716],
          [`loadgen->web:27380/http1`, 600],
          [`orders:27382->kafka:27383/kafka`, 137],
          [`orders:27382->mariadbd:27385/mysql`, 450],
          [`shipping->kafka:27383/kafka`, 550],
          [`web:27380->api:27381/http2`, 570],
        ].sort(),
      ),
    );
    const nodes = resultRows(q("nodes")).map((n) => n.service).sort();
    assert.deepEqual(nodes, ["api:27381", "kafka:27383", "loadgen", "mariadbd:27385", "orders:27382", "redis-server:27384", "shipping", "web:27380"]);
  });

  it("the node and namespace variables filter the service map and the spans too (edges and spans carry both tags)", async () => {
    const panelQuery = (uid: string, title: string, refId = "A") => {
      const d = Object.values(allDashboards()).find((x) => x.uid === uid)!;
      return d.panels.find((p) => p.title === title)!.targets.find((t) => t.refId === refId)!.query;
    };
    const at = async (query: string, node: string, namespace: string) =>
      resultRows(await run(interpolate(query, { ...range, intervalMs: WINDOW, vars: { node, namespace, protocol: "$__all", service: "$__all", resource: "$__all", trace_id: traceId } })));
    const queries = [panelQuery("wirescope-service-map", "Service map", "nodes"), panelQuery("wirescope-service-map", "Service map", "edges"), panelQuery("wirescope-service-map", "Calls between services"), panelQuery("wirescope-traces", "Recent spans"), panelQuery("wirescope-traces", "Slowest spans")];
    for (const q of queries) {
      const all = await at(q, "$__all", "$__all");
      assert.ok(all.length > 0, q);
      assert.deepEqual(await at(q, "vm", "-"), all, `the capture's node and namespace select everything: ${q}`);
      assert.deepEqual(await at(q, "elsewhere", "$__all"), [], `another node selects nothing: ${q}`);
      assert.deepEqual(await at(q, "vm", "shop"), [], `a namespace the capture lacks selects nothing: ${q}`);
    }
  });

  it("the trace view's query returns Grafana's trace frame for a demo trace, linked from the load generator to the database", async () => {
    const r = await run(interpolate(TRACE_FRAME_QUERY, { ...range, intervalMs: WINDOW, vars: { trace_id: traceId } }));
    // One frame: the traces panel draws the first frame only (so the query has no GROUP BY).
    assert.equal(r.series!.length, 1);
    const cols = r.series![0]!.columns;
    for (const c of ["traceID", "spanID", "parentSpanID", "serviceName", "serviceTags", "operationName", "startTime", "duration", "tags"]) assert.ok(cols.includes(c), `${c} in ${cols.join(", ")}`);
    const spans = resultRows(r);
    const byId = new Map(spans.map((s) => [s.spanID, s]));
    const roots = spans.filter((s) => s.parentSpanID === "");
    assert.equal(roots.length, 1, "one root");
    assert.equal(roots[0]!.serviceName, "loadgen");
    for (const s of spans) {
      assert.equal(s.traceID, traceId);
      if (s !== roots[0]) assert.ok(byId.has(s.parentSpanID), `${s.serviceName} ${s.operationName}: parent inside the trace`);
      assert.equal(typeof s.startTime, "number");
      assert.ok(Number(s.duration) > 0);
      const tags = JSON.parse(String(s.tags)) as { key: string; value: unknown }[];
      assert.ok(tags.some((t) => t.key === "network.protocol.name"), String(s.tags));
      assert.deepEqual(JSON.parse(String(s.serviceTags)), [{ key: "service.name", value: s.serviceName }, { key: "host.name", value: "vm" }]);
    }
    // The database span's ancestry, by service: server(db) ← client(orders) ← server(orders) ← ... ← client(loadgen).
    const db = spans.find((s) => s.serviceName === S.mariadb)!;
    const chain: string[] = [];
    for (let cur: Record<string, unknown> | undefined = db; cur; cur = byId.get(cur.parentSpanID)) chain.push(`${cur.serviceName}/${cur.kind}`);
    assert.deepEqual(chain, [`${S.mariadb}/server`, `${S.orders}/client`, `${S.orders}/server`, `${S.api}/client`, `${S.api}/server`, `${S.web}/client`, `${S.web}/server`, "loadgen/client"]);
    const dbTags = Object.fromEntries((JSON.parse(String(db.tags)) as { key: string; value: unknown }[]).map((t) => [t.key, t.value]));
    assert.equal(dbTags["db.system"], "mysql");
    assert.equal(dbTags["peer.service"], S.orders);
    // Every span starts within its parent (the waterfall draws children inside their parents).
    for (const s of spans) {
      const p = byId.get(s.parentSpanID);
      if (p) assert.ok(Number(s.startTime) >= Number(p.startTime) - 1 && Number(s.startTime) + Number(s.duration) <= Number(p.startTime) + Number(p.duration) + 1, `${s.serviceName} inside ${p.serviceName}`);
    }
  });

  it("endpoint links lead to that endpoint's slowest and failed spans", async () => {
    const traces = allDashboards().traces!;
    const panel = (title: string) => traces.panels.find((p) => p.title === title)!;
    const vars = { node: "$__all", namespace: "$__all", service: S.web, resource: "/shop/missing", trace_id: traceId };
    // The demo's /shop/missing answers 404, and its POST /shop/orders fails sometimes (5xx).
    const slow = resultRows(await run(interpolate(panel("Slowest spans").targets[0]!.query, { ...range, intervalMs: WINDOW, vars })));
    assert.ok(slow.length > 0 && slow.every((s) => s.resource === "/shop/missing" && s.service === S.web), JSON.stringify(slow.slice(0, 3)));
    const failed = resultRows(await run(interpolate(panel("Failed spans").targets[0]!.query, { ...range, intervalMs: WINDOW, vars: { ...vars, resource: "/shop/orders" } })));
    assert.ok(failed.length > 0, "failed orders");
    for (const f of failed) assert.ok(Number(f.status) >= 500, JSON.stringify(f));
  });

  // Last: it adds data (a sampled service) that the checks above do not expect.
  it("the pipeline's observed-fraction panel shows a sampled service and edge below 1, the exact ones at 1", async () => {
    // web's server-side records again, now, as a service whose connections the probe observed one
    // in four of (Record.observed_fraction = 0.25): each stands for 4 requests.
    const nowNs = BigInt(Date.now() - 3000) * 1_000_000n;
    const web = records.filter((r) => r.role === Role.SERVER && r.server?.service === S.web).slice(0, 40);
    assert.equal(web.length, 40);
    const sampled = web.map((r, i) => {
      const c = clone(RecordSchema, r);
      c.startNs = nowNs + BigInt(i) * 10_000_000n;
      c.server!.service = "web-sampled";
      c.client!.service = "loadgen-sampled";
      c.connKey += 1_000_000n;
      c.trace = undefined;
      c.observedFraction = 0.25;
      return c;
    });
    await publishRecords(nc, sampled, 200, 1);
    await waitFor(async () => (await rows(influx.url, DB, `SELECT sum(requests) FROM red WHERE service = 'web-sampled'`))[0]?.sum === 160, { timeoutMs: 60_000, intervalMs: 1000, what: "the sampled service's 160 estimated requests" });
    await waitFor(async () => (await rows(influx.url, DB, `SELECT sum(requests) FROM edges WHERE server = 'web-sampled'`))[0]?.sum === 160, { timeoutMs: 30_000, intervalMs: 1000, what: "its edge" });
    const d = allDashboards()["pipeline-health"]!;
    const p = d.panels.find((x) => x.title.startsWith("Observed fraction"))!;
    const at = { fromMs: range.fromMs, toMs: Date.now() + 60_000, intervalMs: WINDOW, vars: {} };
    const lowest = (refId: string, key: (r: Record<string, unknown>) => string) => {
      const out = new Map<string, number>();
      return run(interpolate(p.targets.find((t) => t.refId === refId)!.query, at)).then((r) => {
        for (const row of resultRows(r)) out.set(key(row), Math.min(out.get(key(row)) ?? 1, Number(row.observed_fraction)));
        return out;
      });
    };
    const services = await lowest("A", (r) => String(r.service));
    assert.equal(services.get("web-sampled"), 0.25);
    for (const s of Object.values(S)) assert.equal(services.get(s), 1, `${s} exact`);
    const edges = await lowest("B", (r) => `${String(r.client)}->${String(r.server)}`);
    assert.equal(edges.get("loadgen-sampled->web-sampled"), 0.25);
    assert.equal(edges.get(`loadgen->${S.web}`), 1);
    // the points below 1 are exactly those marked sampled
    const [marked] = await rows(influx.url, DB, `SELECT count(requests) AS n FROM red WHERE sampled = true`);
    const [below] = await rows(influx.url, DB, `SELECT count(requests) AS n FROM red WHERE observed_fraction < 1`);
    assert.ok(Number(marked?.n) > 0);
    assert.equal(marked?.n, below?.n);
  });
  // Last too: it adds ends outside the shop.
  it("the service map has a node for every end of every edge: an address outside is an external node", async () => {
    // web calls a database outside (by address), and a client outside calls api: neither has red series
    // in a window of their own (the windows of the data before are closed: records for them are late)
    const at = Math.ceil(Date.now() / WINDOW) * WINDOW + 100;
    await waitFor(async () => Date.now() > at + 500, { timeoutMs: 20_000, intervalMs: 100, what: "the next window" });
    const web = { service: S.web, address: "127.0.0.1", port: 45000, pid: 41, name: "web" };
    const api = { service: S.api, address: "127.0.0.1", port: 27381, pid: 42, name: "api" };
    const recs = [];
    for (let i = 0; i < 20; i++) {
      recs.push(makeRecord({ startMs: at + i * 10, durationMs: 2, role: "client", protocol: "postgresql", operation: "SELECT", resource: "SELECT 1", client: web, server: { address: "203.0.113.9", port: 5432 }, connKey: 9_000_001n }));
      recs.push(makeRecord({ startMs: at + i * 10 + 1, durationMs: 1, role: "server", protocol: "http2", client: { address: "198.51.100.7", port: 50000 }, server: api, connKey: 9_000_002n }));
    }
    await publishRecords(nc, recs, 200, 2);
    for (const [tag, v] of [["server", "203.0.113.9:5432"], ["client", "198.51.100.7"]])
      await waitFor(async () => (await rows(influx.url, DB, `SELECT sum(requests) FROM edges WHERE ${tag} = '${v}'`))[0]?.sum === 20, { timeoutMs: 60_000, intervalMs: 1000, what: `the edge of ${v}` });
    const d = allDashboards()["service-map"]!;
    const p = d.panels.find((x) => x.title === "Service map")!;
    const vars = { fromMs: range.fromMs, toMs: Date.now() + 60_000, intervalMs: WINDOW, vars: { node: "$__all", namespace: "$__all", protocol: "$__all" } };
    const frame = async (refId: string) => resultRows(await run(interpolate(p.targets.find((t) => t.refId === refId)!.query, vars)));
    const nodes = new Map((await frame("nodes")).map((n) => [String(n.service), n]));
    const edges = await frame("edges");
    assert.ok(edges.length >= 9, `${edges.length} edges`);
    for (const e of edges) for (const end of [String(e.client), String(e.server)]) assert.ok(nodes.has(end), `the node of ${end} (edge ${String(e.id)})`);
    for (const ext of ["203.0.113.9:5432", "198.51.100.7"]) assert.deepEqual([nodes.get(ext)?.subtitle, nodes.get(ext)?.mainstat], ["external", null], ext);
    for (const svc of Object.values(S)) {
      assert.equal(nodes.get(svc)?.subtitle, "service", svc);
      assert.ok(Number(nodes.get(svc)?.mainstat) > 0, svc);
    }
  });
});
