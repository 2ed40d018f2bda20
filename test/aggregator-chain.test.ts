// A 3-tier chain of real processes, traced with no instrumentation:
//   HTTP client ──http──▶ node:http service ──gRPC (@grpc/grpc-js)──▶ gRPC service ──MySQL──▶ mariadbd
// captured by `wirescope probe` (real eBPF), decoded by `wirescope parser` (WASM plugins),
// aggregated by `wirescope aggregator` into a real influxd. Every request must come out as one
// trace whose six spans link correctly at every level.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { checkHealth, ServingStatus } from "@wirescope/runtime";
import { startNats, startInflux, freePort, spawnTracked, tempDir, waitFor, type TestServer, WIRESCOPE_BIN } from "./support/index.js";
import { startMariaDb, type MariaDb } from "./support/mariadb.js";
import { bpfAvailable, runChild, CHILD_REQUIRE, type Child } from "./probe-support.js";
import { startAggregator, rows, type AggregatorProc } from "./aggregator-support.js";
import type { ManagedProcess } from "@wirescope/runtime";

const DB = "agg_chain";

const GRPC_DEF = `const id = (b) => b;
const svc = { get: { path: "/shop.Items/Get", requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } };
`;

// args: grpcPort dbPort. One MySQL connection, one query per call.
const GRPC_SERVICE = `${CHILD_REQUIRE}const grpc = require("@grpc/grpc-js");
const mysql = require("mysql2");
${GRPC_DEF}
const [port, dbPort] = process.argv.slice(2).map(Number);
const db = mysql.createConnection({ host: "127.0.0.1", port: dbPort, user: "root" });
await new Promise((res, rej) => db.connect((e) => (e ? rej(e) : res())));
const server = new grpc.Server();
server.addService(svc, {
  get: (call, cb) => {
    const n = Number(call.request.toString());
    db.query("SELECT " + n + " AS item, SLEEP(0.005) AS s", (err, r) => (err ? cb(err) : cb(null, Buffer.from(JSON.stringify(r[0])))));
  },
});
server.bindAsync("127.0.0.1:" + port, grpc.ServerCredentials.createInsecure(), (err) => { if (err) throw err; console.log("READY"); });
`;

// args: httpPort grpcPort. Forwards an incoming traceparent unchanged (a header-propagating app).
const HTTP_SERVICE = `${CHILD_REQUIRE}const grpc = require("@grpc/grpc-js");
import http from "node:http";
${GRPC_DEF}
const [port, grpcPort] = process.argv.slice(2).map(Number);
const Client = grpc.makeGenericClientConstructor(svc, "Items");
const c = new Client("127.0.0.1:" + grpcPort, grpc.credentials.createInsecure());
const srv = http.createServer((req, res) => {
  const n = req.url.split("/").pop();
  const md = new grpc.Metadata();
  if (req.headers.traceparent) md.set("traceparent", req.headers.traceparent);
  c.get(Buffer.from(n), md, (err, r) => {
    if (err) { res.statusCode = 500; res.end(String(err)); return; }
    res.setHeader("content-type", "application/json");
    res.end(r);
  });
});
srv.listen(port, "127.0.0.1", () => console.log("READY"));
`;

// args: httpPort count concurrency withTraceparent. Prints TRACE <trace-id> per request.
const HTTP_CLIENT = `
import http from "node:http";
import crypto from "node:crypto";
const [port, count, conc, withTp] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
let next = 0;
async function one(i) {
  const headers = {};
  if (withTp) {
    const trace = crypto.randomBytes(16).toString("hex");
    headers.traceparent = "00-" + trace + "-" + crypto.randomBytes(8).toString("hex") + "-01";
    console.log("TRACE " + trace);
  }
  await new Promise((resolve, reject) => {
    const req = http.get({ port, host: "127.0.0.1", path: "/items/" + (1000 + i), agent, headers }, (res) => {
      res.resume();
      res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error("HTTP " + res.statusCode))));
    });
    req.on("error", reject);
  });
}
async function worker() {
  while (next < count) {
    const i = next++;
    await one(i);
    if (conc === 1) await new Promise((r) => setTimeout(r, 30));
  }
}
await Promise.all(Array.from({ length: conc }, worker));
agent.destroy();
console.log("DONE");
`;

interface SpanRow {
  time: string;
  service: string;
  kind: string;
  protocol: string;
  trace_id: string;
  span_id: string;
  parent_span_id: string;
  name: string;
  linked_by: string;
  server_port: number;
}

describe("a 3-tier chain of real processes becomes linked traces", { timeout: 300_000 }, () => {
  let skip = false;
  let nats: TestServer;
  let influx: TestServer;
  let mariadb: MariaDb;
  let probe: ManagedProcess;
  let parser: ManagedProcess;
  let agg: AggregatorProc;
  const children: Child[] = [];
  let httpPort = 0;
  let grpcPort = 0;

  before(async (t) => {
    if (!bpfAvailable(t as never)) {
      skip = true;
      return;
    }
    nats = await startNats({ jetstream: true });
    influx = await startInflux();
    mariadb = await startMariaDb({ skipGrantTables: true });
    httpPort = await freePort();
    grpcPort = await freePort();
    const dir = tempDir("wirescope-chain-");
    const grpcPortProbe = await freePort();
    probe = await spawnTracked("probe", process.execPath, [
      WIRESCOPE_BIN, "probe", "--nats-url", nats.url, "--grpc-port", String(grpcPortProbe), "--lock-file", path.join(dir, "probe.lock"),
      "--mount-tracefs", "--batch-ms", "10", "--log-level", "warn", "--allow-port", String(httpPort), "--allow-port", String(grpcPort), "--allow-port", String(mariadb.port),
    ], { logFile: path.join(dir, "probe.log") });
    await waitFor(async () => {
      if (probe.hasExited) throw new Error(`probe exited: ${probe.tail()}`);
      return (await checkHealth(`127.0.0.1:${grpcPortProbe}`)).status === ServingStatus.SERVING;
    }, { timeoutMs: 30_000, intervalMs: 100, what: "probe serving" });
    // The parser as a process; ready when its Health says SERVING (NATS connected, partitions owned).
    const parserGrpc = await freePort();
    parser = await spawnTracked("parser", process.execPath, [WIRESCOPE_BIN, "parser", "--nats-url", nats.url, "--grpc-port", String(parserGrpc), "--log-format", "json", "--node", "test-node"], { logFile: path.join(dir, "parser.log") });
    await waitFor(async () => {
      if (parser.hasExited) throw new Error(`parser exited: ${parser.tail()}`);
      return (await checkHealth(`127.0.0.1:${parserGrpc}`)).status === ServingStatus.SERVING;
    }, { timeoutMs: 30_000, intervalMs: 100, what: "parser serving" });
    agg = await startAggregator(nats.url, influx.url, DB, ["--window-ms", "2000", "--grace-ms", "2000", "--span-sample-rate", "1", "--span-budget", "0"]);
    const g = await runChild("grpc-service", GRPC_SERVICE, [String(grpcPort), String(mariadb.port)]);
    children.push(g);
    await g.waitLine(/^READY/, 20_000);
    const h = await runChild("http-service", HTTP_SERVICE, [String(httpPort), String(grpcPort)]);
    children.push(h);
    await h.waitLine(/^READY/, 20_000);
    // Warm-up: one request must come out as spans before the measured ones (the whole pipeline
    // flows: probe attached, parser owns its partitions, aggregator writes).
    const warmFrom = Date.now() - 1000;
    await waitFor(async () => {
      const w = await runChild("warm-up", HTTP_CLIENT, [String(httpPort), "1", "1", "0"]);
      children.push(w);
      await w.waitLine(/^DONE/, 20_000);
      await new Promise((r) => setTimeout(r, 4000));
      return (await rows(influx.url, DB, `SELECT count(duration_ms) FROM spans WHERE time >= ${warmFrom}ms AND server_port = ${httpPort}`)).length > 0;
    }, { timeoutMs: 60_000, intervalMs: 100, what: "warm-up request visible as spans" });
  });
  after(async () => {
    for (const c of children) c.kill();
    await agg?.stop();
    await parser?.stop();
    await probe?.stop();
    await mariadb?.stop();
    await influx?.stop();
    await nats?.stop();
  });

  async function spansSince(fromMs: number): Promise<SpanRow[]> {
    const r = await rows(influx.url, DB, `SELECT * FROM spans WHERE time >= ${fromMs}ms GROUP BY *`);
    return r as unknown as SpanRow[];
  }

  /** Groups spans by trace; checks the six-level chain of one trace rooted at an HTTP client span. */
  function checkChain(spans: SpanRow[]): string[] {
    const problems: string[] = [];
    const byId = new Map(spans.map((s) => [s.span_id, s]));
    const parentOf = (s: SpanRow) => (s.parent_span_id ? byId.get(s.parent_span_id) : undefined);
    const httpServer = spans.filter((s) => s.kind === "server" && s.server_port === httpPort);
    for (const hs of httpServer) {
      const trace = spans.filter((s) => s.trace_id === hs.trace_id);
      const want: [string, number, string][] = [["client", httpPort, "http client"], ["server", httpPort, "http server"], ["client", grpcPort, "grpc client"], ["server", grpcPort, "grpc server"], ["client", mariadb.port, "mysql client"], ["server", mariadb.port, "mysql server"]];
      const found = want.map(([kind, port]) => trace.filter((s) => s.kind === kind && s.server_port === port));
      found.forEach((f, i) => {
        if (f.length !== 1) problems.push(`trace ${hs.trace_id}: ${f.length} ${want[i]![2]} spans`);
      });
      if (found.some((f) => f.length !== 1)) continue;
      const chain = found.map((f) => f[0]!);
      if (chain[0]!.parent_span_id !== "") problems.push(`trace ${hs.trace_id}: http client span has a parent`);
      for (let i = 1; i < chain.length; i++) if (parentOf(chain[i]!) !== chain[i - 1]) problems.push(`trace ${hs.trace_id}: ${want[i]![2]}'s parent is not the ${want[i - 1]![2]} (linked_by ${chain[i]!.linked_by || "-"})`);
    }
    return problems;
  }

  it("requests one at a time: every request is one trace, parent links correct at every level", async (t) => {
    if (skip) return t.skip("eBPF unavailable");
    const from = Date.now() - 1000;
    const c = await runChild("http-client", HTTP_CLIENT, [String(httpPort), "5", "1", "0"]);
    children.push(c);
    await c.waitLine(/^DONE/, 60_000);
    let spans: SpanRow[] = [];
    await waitFor(async () => {
      spans = await spansSince(from);
      return spans.filter((s) => s.kind === "server" && s.server_port === httpPort).length >= 5 && spans.filter((s) => s.kind === "server" && s.server_port === mariadb.port).length >= 5;
    }, { timeoutMs: 60_000, intervalMs: 500, what: "spans of 5 requests in InfluxDB" });
    await new Promise((r) => setTimeout(r, 3000)); // late windows of the same requests
    spans = await spansSince(from);
    const httpServer = spans.filter((s) => s.kind === "server" && s.server_port === httpPort);
    assert.equal(httpServer.length, 5, "one HTTP server span per request");
    assert.equal(new Set(httpServer.map((s) => s.trace_id)).size, 5, "five distinct traces");
    assert.deepEqual(checkChain(spans), [], JSON.stringify(spans.map((s) => [s.time, (s as unknown as { duration_ms: number }).duration_ms, s.service, s.kind, s.protocol, s.server_port, (s as unknown as { client_port: number }).client_port, (s as unknown as { tid: number }).tid, s.trace_id.slice(0, 8), s.span_id, s.parent_span_id, s.linked_by]), null, 0));
  });

  it("with traceparent from the client, links hold under concurrency", async (t) => {
    if (skip) return t.skip("eBPF unavailable");
    const from = Date.now() - 1000;
    const c = await runChild("http-client-tp", HTTP_CLIENT, [String(httpPort), "20", "4", "1"]);
    children.push(c);
    await c.waitLine(/^DONE/, 60_000);
    const traces = c.lines.filter((l) => l.startsWith("TRACE ")).map((l) => l.slice(6));
    assert.equal(traces.length, 20);
    let spans: SpanRow[] = [];
    await waitFor(async () => {
      spans = await spansSince(from);
      return traces.every((tr) => spans.filter((s) => s.trace_id === tr).length >= 4);
    }, { timeoutMs: 60_000, intervalMs: 500, what: "spans of 20 concurrent requests" });
    await new Promise((r) => setTimeout(r, 3000));
    spans = await spansSince(from);
    // The header crosses HTTP and gRPC; MySQL carries none, so under concurrency the database
    // calls can only be linked when a single request is in flight on the gRPC service's thread.
    for (const tr of traces) {
      const mine = spans.filter((s) => s.trace_id === tr);
      const kinds = mine.map((s) => `${s.kind}:${s.server_port}`).sort();
      for (const k of [`client:${httpPort}`, `server:${httpPort}`, `client:${grpcPort}`, `server:${grpcPort}`]) assert.ok(kinds.includes(k), `trace ${tr} has ${k}: ${kinds.join(" ")}`);
      const byId = new Map(mine.map((s) => [s.span_id, s]));
      const get = (kind: string, port: number) => mine.find((s) => s.kind === kind && s.server_port === port)!;
      assert.equal(byId.get(get("server", httpPort).parent_span_id), get("client", httpPort), `trace ${tr}: http server ← http client`);
      assert.equal(byId.get(get("client", grpcPort).parent_span_id), get("server", httpPort), `trace ${tr}: grpc client ← http server`);
      assert.equal(byId.get(get("server", grpcPort).parent_span_id), get("client", grpcPort), `trace ${tr}: grpc server ← grpc client`);
      // A MySQL span in this trace must be correctly linked (never a wrong guess).
      const mc = mine.find((s) => s.kind === "client" && s.server_port === mariadb.port);
      if (mc) assert.equal(byId.get(mc.parent_span_id), get("server", grpcPort), `trace ${tr}: mysql client ← grpc server`);
    }
  });
});
