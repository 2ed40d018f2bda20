// A newcomer's first minutes: `npm start` with the demo on (the default), real processes only.
// The shop's load generator makes a fixed number of requests; every part counts what it really did
// (services/cli/src/demo/counts.ts). After the windows close, InfluxDB must hold exactly those
// numbers per service and endpoint (web → api over TLS included), every caller/callee pair must be an edge with both ends named,
// the chain's traces must be linked at every level, and the pipeline must report no drops.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { readCounts } from "@wirescope/cli/demo/counts";
import { ports as demoPorts, GRPC_SERVICE } from "@wirescope/cli/demo/spec";
import { readInfluxCredentials } from "@wirescope/runtime";
import { REPO_ROOT, stackPorts, stackArgs, privateRun, tempDir, waitFor, checkDashboards, checkAlertQueries, influxRunner, otlpReceiver } from "./support/index.js";
import { bpfAvailable } from "./probe-support.js";

const REQUESTS = 300;

type Row = Record<string, unknown>;
/** InfluxQL as the stack's admin (`up` runs influxd with authentication; the user is in the data dir). */
let auth = "";
async function rows(url: string, q: string): Promise<Row[]> {
  const res = await fetch(`${url}/query?${new URLSearchParams({ q, db: "wirescope" })}`, { headers: auth ? { authorization: auth } : {}, signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { results: { series?: { tags?: Record<string, string>; columns: string[]; values: unknown[][] }[]; error?: string }[]; error?: string };
  if (!res.ok || body.error) throw new Error(`InfluxQL ${res.status}: ${body.error ?? ""} in ${q}`);
  const r = body.results[0]!;
  if (r.error) throw new Error(`${r.error} in ${q}`);
  return (r.series ?? []).flatMap((s) => s.values.map((v) => ({ ...s.tags, ...Object.fromEntries(s.columns.map((c, i) => [c, v[i]])) })));
}

/** The last lines of the demo's log and of each part's: why the shop did not come up, in the failure. */
function demoLogs(dataDir: string): string {
  const files = [path.join(dataDir, "logs", "demo.log")];
  const parts = path.join(dataDir, "demo", "logs");
  if (fs.existsSync(parts)) files.push(...fs.readdirSync(parts).sort().map((f) => path.join(parts, f)));
  return files
    .filter((f) => fs.existsSync(f))
    .map((f) => `--- ${path.relative(dataDir, f)} (last lines)\n${fs.readFileSync(f, "utf8").trimEnd().split("\n").slice(-8).join("\n")}`)
    .join("\n");
}

/**
 * A free run of six consecutive ports for the demo, below the ephemeral range: between this check
 * and the parts' binds, an outgoing connection of the stack could take a port of that range.
 */
async function freeBase(): Promise<number> {
  const low = Number(fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 32768;
  for (;;) {
    const base = 10000 + Math.floor(Math.random() * Math.max(1, low - 10000 - 6));
    const ok = await Promise.all(Array.from({ length: 6 }, (_, i) => import("node:net").then((net) => new Promise<boolean>((res) => {
      const s = net.createServer().once("error", () => res(false)).listen(base + i, "127.0.0.1", () => s.close(() => res(true)));
    }))));
    if (ok.every(Boolean)) return base;
  }
}

test("the demo shop: exact counts per service and endpoint, named edges, linked traces, no drops", { timeout: 420_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const dataDir = tempDir("wirescope-demo-");
  const p = await stackPorts();
  const base = await freeBase();
  const dp = demoPorts(base);
  const influxUrl = `http://127.0.0.1:${p.influx}`;
  // A collector for the aggregator's OTLP export (`up --otlp-endpoint`).
  const collector = await otlpReceiver();
  const args = ["start", "--", ...stackArgs(dataDir, p),
    "--no-build", "--no-install", "--demo-port", String(base), "--demo-requests", String(REQUESTS), "--otlp-endpoint", collector.url];
  // In a private /run: the probe's single-instance lock is this stack's, whatever other probe runs here.
  const npm = spawn(...privateRun(["npm", ...args]), { cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, npm_config_update_notifier: "false" } });
  let out = "";
  npm.stdout.on("data", (d: Buffer) => (out += d.toString()));
  npm.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise((r) => npm.once("exit", r));
  try {
    await waitFor(() => /^ready: \d+ processes running$/m.test(out) || npm.exitCode !== null, { timeoutMs: 240_000, intervalMs: 200, what: "`ready` from npm start" });
    assert.equal(npm.exitCode, null, out);
    assert.match(out, /^demo\s+\d+\s+http:\/\/127\.0\.0\.1:\d+ \(shop\)\s+ready/m, `${out}\n${demoLogs(dataDir)}`);
    assert.match(out, /demo: added redis/, out);
    const admin = readInfluxCredentials(dataDir);
    if (admin) auth = `Basic ${Buffer.from(`${admin.user}:${admin.password}`).toString("base64")}`;

    // The load generator stops after REQUESTS; then every part's counts stop moving.
    const demoDir = path.join(dataDir, "demo");
    let last = "";
    await waitFor(() => {
      const c = readCounts(demoDir);
      const sent = [...c].filter(([k]) => k.startsWith("client http") && / \/shop\//.test(k)).reduce((a, [, v]) => a + v, 0);
      const now = JSON.stringify([...c].sort());
      const settled = sent === REQUESTS && now === last;
      last = now;
      return settled;
    }, { timeoutMs: 120_000, intervalMs: 2500, what: `the demo's ${REQUESTS} requests to complete` });
    const counts = readCounts(demoDir);
    const sum = (re: RegExp) => [...counts].filter(([k]) => re.test(k)).reduce((a, [, v]) => a + v, 0);

    const svc = { web: `web:${dp.web}`, api: `api:${dp.api}`, orders: `orders:${dp.orders}`, mariadb: `mariadbd:${dp.mariadb}`, redis: `redis-server:${dp.redis}`, kafka: `kafka:${dp.kafka}` };
    const serverTotal = async (service: string, extra = "") => {
      const [r] = await rows(influxUrl, `SELECT sum(requests) AS n, sum(errors) AS e FROM red WHERE role = 'server' AND service = '${service}'${extra}`);
      return { n: Number(r?.n ?? 0), e: Number(r?.e ?? 0) };
    };
    // Windows close 10 s + grace after their end: wait until the last server's numbers arrive.
    const want = {
      web: { n: sum(/^server http .* \/shop\//), e: sum(/^server http .* \/shop\/\S+ 5\d\d$/) },
      api: { n: sum(/^server http .* \/(items|orders)/), e: sum(/^server http .* \/(items|orders)\S* 5\d\d$/) },
      orders: { n: sum(/^server grpc /), e: sum(/^server grpc .* (?!0$)\d+$/) },
    };
    await waitFor(async () => (await serverTotal(svc.orders)).n >= want.orders.n && (await serverTotal(svc.web)).n >= want.web.n, { timeoutMs: 90_000, intervalMs: 2000, what: "the demo's windows in InfluxDB" }).catch(async (e: Error) => {
      const seen = await rows(influxUrl, `SELECT sum(requests) AS n FROM red GROUP BY service, role`);
      throw new Error(`${e.message}; expected ${JSON.stringify(want)} of ${JSON.stringify(svc)}; InfluxDB has ${JSON.stringify(seen.map((r) => `${r.service}/${r.role}=${r.n}`))}\n${out}`);
    });

    // Exact requests and errors per service (server side).
    for (const k of ["web", "api", "orders"] as const) assert.deepEqual(await serverTotal(svc[k]), want[k], `${svc[k]}: requests and errors`);
    // Per endpoint.
    const endpoints = await rows(influxUrl, `SELECT sum(requests) AS n FROM red WHERE role = 'server' AND service =~ /^(web|api|orders):/ GROUP BY service, operation, resource`);
    const ep = (service: string, op: string, resource: string) => {
      const n = Number(endpoints.find((r) => r.service === service && r.operation === op && r.resource === resource)?.n ?? 0);
      if (!n) console.log(`no ${service} ${op} ${resource} among ${JSON.stringify(endpoints)}`);
      return n;
    };
    assert.equal(ep(svc.web, "GET", "/shop/items/{id}"), sum(/^server http GET \/shop\/items/));
    assert.equal(ep(svc.web, "POST", "/shop/orders"), sum(/^server http POST \/shop\/orders/));
    assert.equal(ep(svc.web, "GET", "/shop/missing"), sum(/^server http GET \/shop\/missing/));
    assert.equal(ep(svc.api, "GET", "/items/{id}"), sum(/^server http GET \/items/));
    assert.equal(ep(svc.api, "POST", "/orders"), sum(/^server http POST \/orders/));
    assert.equal(ep(svc.orders, "GetItem", `/${GRPC_SERVICE}/GetItem`), sum(/^server grpc .*GetItem/));
    assert.equal(ep(svc.orders, "PlaceOrder", `/${GRPC_SERVICE}/PlaceOrder`), sum(/^server grpc .*PlaceOrder/));
    // Databases, cache and broker: the statements and commands the shop made.
    const byOp = async (service: string) => new Map((await rows(influxUrl, `SELECT sum(requests) AS n FROM red WHERE role = 'server' AND service = '${service}' GROUP BY operation`)).map((r) => [String(r.operation), Number(r.n)]));
    const redis = await byOp(svc.redis);
    assert.equal(redis.get("GET"), sum(/^client redis GET /), `redis: ${JSON.stringify([...redis])}`);
    assert.equal(redis.get("SET"), sum(/^client redis SET /));
    // MySQL by command: the INSERTs are text queries, the SELECTs executions of a statement each
    // pool connection prepares once (at most 4), plus the pool's logins.
    const mysql = await byOp(svc.mariadb);
    const seen = `mysql: ${JSON.stringify([...mysql])}`;
    assert.equal(mysql.get("COM_QUERY"), sum(/^client mysql INSERT /), seen);
    assert.equal(mysql.get("COM_STMT_EXECUTE"), sum(/^client mysql SELECT /), seen);
    assert.ok((mysql.get("COM_STMT_PREPARE") ?? 0) >= 1 && (mysql.get("COM_STMT_PREPARE") ?? 0) <= 4, seen);
    const [mysqlErr] = await rows(influxUrl, `SELECT sum(errors) AS e FROM red WHERE role = 'server' AND service = '${svc.mariadb}' AND operation = 'COM_QUERY'`);
    assert.equal(Number(mysqlErr?.e ?? 0), sum(/^client mysql INSERT orders error/));
    const kafka = await byOp(svc.kafka);
    assert.equal(kafka.get("Produce"), sum(/^client kafka Produce /), `kafka: ${JSON.stringify([...kafka])}`);

    // The service map: every caller/callee pair, both ends named, counted once, equal to the server's count.
    // (loadgen and shipping never listen: they keep their plain process names.)
    const edges = await rows(influxUrl, `SELECT sum(requests) AS n FROM edges GROUP BY client, server, protocol`);
    const edge = (client: string, server: string) => edges.filter((e) => e.client === client && e.server === server).reduce((a, e) => a + Number(e.n), 0);
    assert.equal(edge("loadgen", svc.web), want.web.n, JSON.stringify(edges.filter((e) => String(e.server).startsWith("web"))));
    // A process that listens has one name in every role: web calls api as `web:<port>`.
    assert.equal(edge(svc.web, svc.api), want.api.n);
    assert.equal(edge(svc.api, svc.orders), want.orders.n);
    assert.equal(edge(svc.api, svc.redis), sum(/^client redis /));
    assert.equal(edge(svc.orders, svc.mariadb), [...mysql.values()].reduce((a, b) => a + b, 0));
    assert.ok(edge(svc.orders, svc.kafka) >= sum(/^client kafka Produce /));
    assert.ok(edge("shipping", svc.kafka) > 0);
    // No edge into a demo port is named by address only.
    const demoPortList = Object.values(dp).map(String);
    const byAddress = edges.filter((e) => /^\d+\.\d+\.\d+\.\d+:(\d+)$/.test(String(e.server)) && demoPortList.includes(String(e.server).split(":")[1]));
    assert.deepEqual(byAddress, [], "edges to the shop named by address");

    // web → api is HTTPS (h2 by ALPN): its requests were read in plaintext from node's OpenSSL at
    // both ends (the exact counts and the web → api edge above are theirs), and their spans say so;
    // nothing else of the shop is TLS.
    const hop = await rows(influxUrl, `SELECT peer_service, protocol, tls FROM spans WHERE (service = '${svc.api}' AND kind = 'server') OR (service = '${svc.web}' AND kind = 'client' AND protocol = 'http2') GROUP BY service, kind`);
    assert.ok(hop.some((s) => s.kind === "server") && hop.some((s) => s.kind === "client"), `spans of both ends of web → api: ${hop.length}`);
    for (const s of hop) {
      assert.equal(s.protocol, "http2", JSON.stringify(s));
      assert.equal(s.tls, true, `read inside TLS: ${JSON.stringify(s)}`);
      assert.equal(s.peer_service, s.kind === "server" ? svc.web : svc.api, JSON.stringify(s));
    }
    // (the probe sees the whole host: only the shop's own services are looked at)
    const shop = new Set<unknown>([...Object.values(svc), "loadgen", "shipping"]);
    const tlsSpans = (await rows(influxUrl, `SELECT count(span_id) AS n FROM spans WHERE tls = true GROUP BY service, kind`)).filter((s) => shop.has(s.service));
    assert.deepEqual(tlsSpans.map((s) => `${String(s.service)}/${String(s.kind)}`).sort(), [`${svc.api}/server`, `${svc.web}/client`]);
    assert.equal(tlsSpans.reduce((a, s) => a + Number(s.n), 0), hop.length, "every span of the hop is TLS");

    // Traces: a sampled chain is linked at every level (loadgen -> web -> api -> orders -> mariadbd).
    const spans = await rows(influxUrl, `SELECT trace_id, span_id, parent_span_id, linked_by FROM spans GROUP BY service, kind`);
    const byId = new Map(spans.map((s) => [String(s.span_id), s]));
    const depth = (s: Row): number => {
      let d = 0;
      for (let cur: Row | undefined = s; cur && cur.parent_span_id; cur = byId.get(String(cur.parent_span_id))) d++;
      return d;
    };
    const dbSpans = spans.filter((s) => s.service === svc.mariadb && s.kind === "server");
    assert.ok(dbSpans.length > 0, "database spans kept");
    // server(db) <- client(orders) <- server(orders) <- client(api) <- server(api) <- client(web) <- server(web) <- client(loadgen)
    const whole = dbSpans.find((s) => depth(s) === 7);
    assert.ok(whole, `a database span whose ancestry reaches the load generator (depths: ${[...new Set(dbSpans.map(depth))]})`);

    // Every dashboard query, as Grafana runs it, returns the columns its panel uses.
    const checked = await checkDashboards(influxRunner(influxUrl, "wirescope", auth), { fromMs: Date.now() - 15 * 60_000, toMs: Date.now() + 60_000, values: { trace_id: String(whole.trace_id), service: svc.web } });
    assert.ok(checked.length >= 25, `${checked.length} dashboard queries`);
    await checkAlertQueries(influxRunner(influxUrl, "wirescope", auth), Date.now());

    // The same trace reached the OTLP collector, span for span, with the same parents.
    const inInflux = await rows(influxUrl, `SELECT span_id, parent_span_id FROM spans WHERE trace_id = '${String(whole.trace_id)}' GROUP BY service, kind`);
    await waitFor(() => inInflux.every((s) => collector.spans.some((o) => o.spanId === s.span_id)), { timeoutMs: 30_000, intervalMs: 500, what: "the trace at the OTLP collector" });
    for (const s of inInflux) {
      const o = collector.spans.find((x) => x.spanId === s.span_id)!;
      assert.equal(o.traceId, whole.trace_id);
      assert.equal(o.parentSpanId, s.parent_span_id, `${String(s.service)} ${String(s.kind)}: parent`);
      assert.equal(o.service, s.service);
    }
    assert.ok(inInflux.length >= 8, `${inInflux.length} spans from the load generator to the database`);

    // The pipeline reports no drops.
    const [pl] = await rows(influxUrl, `SELECT sum(*) FROM pipeline`);
    const drops = Object.entries(pl ?? {}).filter(([k, v]) => k.startsWith("sum_drops_") && Number(v) > 0);
    assert.deepEqual(drops, [], "aggregator drops");
    const st = spawnSync(process.execPath, ["bin/wirescope.js", "status", "--json", "--nats-url", `nats://127.0.0.1:${p.nats}`, "--influx-url", influxUrl, "--data-dir", dataDir], { cwd: REPO_ROOT, encoding: "utf8", timeout: 60_000 });
    const status = JSON.parse(st.stdout) as { component: string; counters: Record<string, number> }[];
    // Every loss counter, by name. Not losses: spans_dropped (sampling); `.unclaimed` (traffic in a
    // protocol no plugin decodes, such as the NATS connection of `wirescope plugin add`);
    // `.before_detect` (bytes seen before a connection's protocol was recognised: no request of
    // the shop is among them, as the exact counts above show).
    const lossName = /(^|[._])(drops?|dropped|lost|shed)([._]|$)/;
    const lost = status.flatMap((r) =>
      Object.entries(r.counters ?? {})
        .filter(([k, v]) => lossName.test(k) && k !== "spans_dropped" && !k.endsWith(".unclaimed") && !k.endsWith(".before_detect") && v > 0)
        .map(([k, v]) => `${r.component}.${k}=${v}`),
    );
    assert.deepEqual(lost, [], "pipeline drop counters");

    // `wirescope top` lists the shop.
    const top = spawnSync(process.execPath, ["bin/wirescope.js", "top", "--once", "--range", "10m", "--influx-url", influxUrl, "--data-dir", dataDir], { cwd: REPO_ROOT, encoding: "utf8" });
    for (const s of ["loadgen", svc.web, svc.api, svc.orders, svc.mariadb, svc.redis, svc.kafka, "shipping"]) assert.match(top.stdout, new RegExp(`^[ >]${s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s`, "m"), `top shows ${s}:\n${top.stdout}`);
  } finally {
    if (npm.exitCode === null) process.kill(-npm.pid!, "SIGINT");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 60_000))]);
    await collector.close();
  }
});
