// `wirescope top` against real data: records through the real JetStream stream and the real
// `wirescope aggregator` into a real influxd, then `top --once` on a pipe and the live view in a
// real terminal (tmux: send-keys to type, capture-pane to read the screen).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import type { NatsConnection } from "@nats-io/nats-core";
import { makeRecord } from "@wirescope/aggregator/test-support/records";
import { startNats, startInflux, waitFor, type TestServer, WIRESCOPE_BIN } from "./support/index.js";
import { startAggregator, publishRecords, natsConnect, rows, pastWindow, type AggregatorProc } from "./aggregator-support.js";

const WINDOW = 2000;
const DB = "top_view";

describe("wirescope top", { timeout: 120_000 }, () => {
  let nats: TestServer;
  let influx: TestServer;
  let agg: AggregatorProc;
  let nc: NatsConnection;
  const tmuxSocket = `wirescope-top-${process.pid}`;
  const tmux = (...args: string[]) => spawnSync("tmux", ["-L", tmuxSocket, ...args], { encoding: "utf8" });

  before(async () => {
    nats = await startNats({ jetstream: true });
    influx = await startInflux();
    agg = await startAggregator(nats.url, influx.url, DB, ["--window-ms", String(WINDOW), "--grace-ms", "500", "--pipeline-every-ms", "1000"]);
    nc = await natsConnect(nats.url);
    // web -> api (HTTP, 300 calls, 30 of them 500) -> orders (gRPC, 600 calls), both ends recorded.
    const web = { service: "web", address: "10.9.0.1", port: 40000, pid: 21 };
    const api = { service: "api", address: "10.9.0.2", port: 8080, pid: 22 };
    const apiOut = { service: "api", address: "10.9.0.2", port: 41000, pid: 22 };
    const orders = { service: "orders", address: "10.9.0.3", port: 50051, pid: 23 };
    const base = pastWindow(WINDOW, 30);
    const recs = [];
    for (let i = 0; i < 300; i++) {
      const t = base + i * 10;
      const status = i % 10 === 0 ? 500 : 200;
      for (const role of ["server", "client"] as const)
        recs.push(makeRecord({ startMs: t, durationMs: 4, resource: `/orders/${i}`, status, role, client: web, server: api, connKey: 1n }));
      for (let k = 0; k < 2; k++)
        for (const role of ["server", "client"] as const)
          recs.push(makeRecord({ protocol: "grpc", operation: "POST", startMs: t + 1 + k, durationMs: 1, resource: "/shop.Orders/Get", status: 0, role, client: apiOut, server: orders, connKey: 2n }));
    }
    // peers outside, named by their address: orders calls a database that is not traced (40 calls,
    // 4 failed, its client side only) and a client that is not traced calls orders (20 calls)
    const db = { address: "203.0.113.9", port: 3306 };
    const outside = { address: "198.51.100.7", port: 50000 };
    const ordersOut = { ...orders, port: 43000 };
    for (let i = 0; i < 40; i++)
      recs.push(makeRecord({ protocol: "mysql", operation: "SELECT", startMs: base + 3 + i * 50, durationMs: 1, resource: "SELECT ?", status: i % 10 === 0 ? 1064 : 0, error: i % 10 === 0, role: "client", client: ordersOut, server: db, connKey: 4n }));
    for (let i = 0; i < 20; i++)
      recs.push(makeRecord({ protocol: "grpc", operation: "POST", startMs: base + 7 + i * 90, durationMs: 1, resource: "/shop.Orders/Get", status: 0, role: "server", client: outside, server: orders, connKey: 5n }));
    // and on another node, n2: cron -> report (HTTP, 50 calls), and cron -> billing on n1 (25
    // calls: the edge counted by billing's records, on n1; cron an end of n1's map)
    const cron = { service: "cron", address: "10.9.1.1", port: 42000, pid: 31, node: "n2" };
    const cronOut = { ...cron, port: 42001 };
    const report = { service: "report", address: "10.9.1.2", port: 9000, pid: 32, node: "n2" };
    const billing = { service: "billing", address: "10.9.0.4", port: 7000, pid: 24, node: "n1" };
    for (let i = 0; i < 50; i++)
      for (const role of ["server", "client"] as const)
        recs.push(makeRecord({ startMs: base + 5 + i * 40, durationMs: 2, resource: "/daily", status: 200, role, client: cron, server: report, connKey: 3n, node: "n2" }));
    for (let i = 0; i < 25; i++)
      for (const role of ["server", "client"] as const)
        recs.push(makeRecord({ startMs: base + 9 + i * 80, durationMs: 2, resource: "/invoice", status: 200, role, client: cronOut, server: billing, connKey: role === "client" ? 6n : 7n, node: role === "client" ? "n2" : "n1" }));
    recs.sort((a, b) => Number(a.startNs + a.durationNs - (b.startNs + b.durationNs)));
    await publishRecords(nc, recs, 100);
    await waitFor(async () => {
      const [o] = await rows(influx.url, DB, `SELECT sum(requests) FROM red WHERE service = 'orders' AND role = 'server'`);
      const [a] = await rows(influx.url, DB, `SELECT sum(requests) FROM red WHERE service = 'api' AND role = 'server'`);
      const [r] = await rows(influx.url, DB, `SELECT sum(requests) FROM red WHERE service = 'report' AND role = 'server'`);
      const [b] = await rows(influx.url, DB, `SELECT sum(requests) FROM red WHERE service = 'billing' AND role = 'server'`);
      const [x] = await rows(influx.url, DB, `SELECT count(kind) FROM map_nodes WHERE kind = 'external'`);
      return o?.sum === 620 && a?.sum === 300 && r?.sum === 50 && b?.sum === 25 && Number(x?.count) > 0;
    }, { timeoutMs: 60_000, intervalMs: 500, what: "the shop's requests in InfluxDB" });
  });
  after(async () => {
    tmux("kill-server");
    await nc?.close();
    await agg?.stop();
    await influx?.stop();
    await nats?.stop();
  });

  const args = () => ["top", "--range", "10m", "--influx-url", influx.url, "--influx-db", DB];

  it("prints the services once on a pipe, busiest first, with error % and both sides", () => {
    const out = execFileSync(process.execPath, [WIRESCOPE_BIN, ...args(), "--once"], { encoding: "utf8" });
    const lines = out.split("\n").filter((l) => /^[ >](api|orders|web)\s/.test(l));
    assert.deepEqual(lines.map((l) => l.slice(1).split(/\s+/).slice(0, 2).join(" ")), ["orders server", "api server", "web client"]);
    const api = lines[1]!.trim().split(/\s+/);
    assert.deepEqual([api[3], api[6]], ["10.0%", "300"], `api row: ${lines[1]}`);
    assert.match(out, /pipeline: no drops/);
    const edges = execFileSync(process.execPath, [WIRESCOPE_BIN, ...args(), "--once", "--edges"], { encoding: "utf8" });
    assert.match(edges, /web\s+->\s+api\s+http\s+[\d.]+\s+10\.0%\s+\S+\s+300/);
    assert.match(edges, /api\s+->\s+orders\s+grpc\s+[\d.]+\s+0\.0%\s+\S+\s+600/);
  });

  it("marks the peers outside as external, and lists exactly the service map's nodes", async () => {
    const run = (...extra: string[]) => execFileSync(process.execPath, [WIRESCOPE_BIN, ...args(), "--once", ...extra], { encoding: "utf8" });
    for (const node of ["", "n1", "n2"]) {
      const out = run(...(node ? ["--node", node] : []));
      const shown = new Map<string, string>();
      for (const l of out.split("\n")) {
        const m = /^[ >](\S+?)(\*?)\s+(server|client|external|other-node)\s/.exec(l);
        if (m) shown.set(m[1]!, m[2] ? "external" : "service");
      }
      const where = node ? ` AND "node" = '${node}'` : "";
      const map = await rows(influx.url, DB, `SELECT last(kind) AS kind FROM map_nodes WHERE time > now() - 10m${where} GROUP BY service`);
      const nodes = new Map(map.map((r) => [String(r.service), String(r.kind)]));
      assert.deepEqual([...shown].sort(), [...nodes].sort(), `node ${node || "all"}: top's rows against map_nodes\n${out}`);
      assert.equal(/^\* external: not a traced process/m.test(out), [...nodes.values()].includes("external"), `the legend, node ${node || "all"}`);
    }
    const out = run();
    assert.match(out, /^ 203\.0\.113\.9:3306\*\s+external\s+[\d.]+\s+10\.0%\s+-\s+-\s+40$/m);
    assert.match(out, /^ 198\.51\.100\.7\*\s+external\s+[\d.]+\s+0\.0%\s+-\s+-\s+20$/m);
    // n1's map holds cron (an end of cron -> billing, counted on n1), a service of n2
    assert.match(run("--node", "n1"), /^ cron\s+other-node\s+[\d.]+\s+0\.0%\s+-\s+-\s+25$/m);
    assert.match(run("--node", "n1", "--service", "cron"), /SERVICE cron .*traced on another node[\s\S]*CALLEES\n\s+cron -> billing\s+http/);
    const peer = run("--service", "203.0.113.9:3306");
    assert.match(peer, /PEER 203\.0\.113\.9:3306\*[\s\S]*CALLERS\n\s+orders -> 203\.0\.113\.9:3306\*\s+mysql/);
  });

  it("shows one node with --node; an unknown node names the nodes with data", () => {
    const run = (...extra: string[]) => execFileSync(process.execPath, [WIRESCOPE_BIN, ...args(), "--once", ...extra], { encoding: "utf8" });
    const names = (out: string) => out.split("\n").filter((l) => /^[ >][a-z]+\s+(server|client)\s/.test(l)).map((l) => l.slice(1).split(/\s+/).slice(0, 2).join(" "));
    assert.deepEqual(names(run()), ["orders server", "api server", "web client", "cron client", "report server", "billing server"]);
    const n2 = run("--node", "n2");
    assert.match(n2, /node: n2/);
    assert.deepEqual(names(n2), ["cron client", "report server"], "tied on rate: by name");
    assert.deepEqual(names(run("--node=n1")), ["orders server", "api server", "web client", "billing server"]);
    const edges = run("--node", "n2", "--edges");
    assert.match(edges, /cron\s+->\s+report\s+http\s+[\d.]+\s+0\.0%\s+\S+\s+50/);
    assert.doesNotMatch(edges, /->\s+(api|orders)/);
    assert.match(run("--node", "nope"), /no requests recorded on node nope in this range; nodes with requests: n1, n2/);
  });

  it("runs live in a terminal: nodes, drill-down, edges, filter, quit", async () => {
    const cmd = [process.execPath, WIRESCOPE_BIN, ...args(), "--interval", "1000"].map((a) => `'${a}'`).join(" ");
    const r = tmux("new-session", "-d", "-s", "top", "-x", "120", "-y", "30", "-e", "TERM=xterm-256color", cmd);
    assert.equal(r.status, 0, r.stderr);
    const screen = () => tmux("capture-pane", "-p", "-t", "top").stdout;
    const until = (re: RegExp, what: string) => waitFor(async () => re.test(screen()), { timeoutMs: 15_000, intervalMs: 200, what: `${what}; screen:\n${screen()}` });
    const keys = (...k: string[]) => assert.equal(tmux("send-keys", "-t", "top", ...k).status, 0);

    await until(/>orders\s+server/, "the services, busiest selected");
    assert.match(screen(), /^ api\s+server\s+[\d.]+\s+10\.0%/m);
    await until(/^ 203\.0\.113\.9:3306\*\s+external\s+[\d.]+\s+10\.0%\s+-\s+-\s+40$[\s\S]*^\* external: not a traced process/m, "the database outside marked, and the legend");
    assert.match(screen(), /^ report\s+server/m);
    // n: each node with data, then every node again
    keys("n");
    await until(/node: n1[\s\S]*>orders\s+server/, "node n1");
    assert.doesNotMatch(screen(), /report/);
    assert.match(screen(), /^ cron\s+other-node\s/m, "n2's cron, an end of billing's edge on n1");
    keys("n");
    await until(/node: n2[\s\S]*>cron\s+client[\s\S]*report\s+server/, "node n2");
    assert.doesNotMatch(screen(), /orders|api|web/);
    keys("n");
    await until(/node: all[\s\S]*>orders\s+server[\s\S]*report/, "every node again");
    keys("Down", "Enter");
    await until(/SERVICE api[\s\S]*CALLERS\n\s+web -> api\s+http[\s\S]*CALLEES\n\s+api -> orders\s+grpc/, "api's callers and callees");
    await until(/>http\s+GET\s+[\d.]+\s+10\.0%.*\/orders\/\{id\}/, "api's endpoint");
    keys("Escape");
    await until(/>orders\s+server/, "back to the services");
    keys("e");
    await until(/EDGES[\s\S]*api\s+->\s+orders/, "the edges view");
    assert.match(screen(), /^ 198\.51\.100\.7\*\s+->\s+orders\s+grpc/m);
    assert.match(screen(), /^ orders\s+->\s+203\.0\.113\.9:3306\*\s+mysql/m);
    assert.match(screen(), /^\* external: not a traced process/m);
    keys("/", "w", "e", "b", "Enter");
    await until(/filter: web/, "the filter applied");
    const filtered = screen();
    assert.match(filtered, /web\s+->\s+api/);
    assert.doesNotMatch(filtered, /api\s+->\s+orders/);
    keys("q");
    await waitFor(async () => tmux("has-session", "-t", "top").status !== 0, { timeoutMs: 10_000, intervalMs: 100, what: "top to quit on q" });
  });
});
