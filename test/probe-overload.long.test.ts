// Graceful overload, end to end: the real probe (`wirescope probe`, kernel eBPF), nats-server,
// parser, aggregator and influxd, a node:http server under h2load (keep-alive), both ends traced.
//   - sampling: with a fixed observed fraction, whole connections are shed in the kernel and the
//     requests in InfluxDB, scaled by the fraction, are within ±5 % of what was sent; the series
//     say they are sampled, and the shed connections are counted;
//   - fairness: random bytes flooding a sink on loopback next to the keep-alive traffic: the flood
//     connection is shed (counted), every normal request is still recorded exactly, unsampled;
//   - re-decision: a new level reaches long-lived keep-alive connections between two requests;
//     every epoch decides them again; both ends of a connection decide alike across an epoch.
// Each test asserts what was recorded, never how fast; waits are bounded conditions.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import readline from "node:readline";
import http from "node:http";
import { promisify } from "node:util";
import { ProbeService } from "@wirescope/wire";
import { createClient } from "@wirescope/runtime";
import { copyPolicyBytes, EbpfSource, EMPTY_FILTER } from "@wirescope/probe";

/** A copy policy with no body declared: the connection is followed, its turns vouched for. */
const FOLLOWED = copyPolicyBytes({ bodyEnd: [0, 0], stream: 0 });
import { startNats, startInflux, freePort, tempDir, waitFor } from "./support/index.js";
import { bpfAvailable, runChild, spawnProbe, type Child } from "./probe-support.js";
import { startParser, parserStatus } from "./parser-support.js";
import { startAggregator, rows } from "./aggregator-support.js";

const run = promisify(execFile);
const DB = "wirescope";

const SERVER = `
import http from "node:http";
process.title = "wsload";
const body = Buffer.alloc(512, "x");
const srv = http.createServer((req, res) => { res.writeHead(req.url === "/err" ? 500 : 200, { "content-type": "text/plain" }); res.end(body); });
srv.keepAliveTimeout = 60_000;
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));
`;

// A sink that reads and drops, in a process of its own.
const SINK = `
import net from "node:net";
process.title = "wssink";
const srv = net.createServer((s) => s.resume());
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));
`;

// One connection writing random bytes as fast as the sink takes them, for argv[3] ms.
const FLOOD = `
import net from "node:net";
import crypto from "node:crypto";
process.title = "wsflood";
const [port, ms] = process.argv.slice(2).map(Number);
const chunk = crypto.randomBytes(64 * 1024);
const c = net.connect(port, "127.0.0.1", async () => {
  console.log("FLOODING");
  const end = Date.now() + ms;
  let sent = 0;
  while (Date.now() < end) {
    if (!c.write(chunk)) await new Promise((r) => c.once("drain", r));
    sent += chunk.length;
  }
  console.log("SENT " + sent);
  c.end();
});
`;

interface Bed {
  port: number;
  /** The probe's Prometheus /metrics text. */
  metrics(): Promise<string>;
  probeCounters(): Promise<Record<string, number>>;
  parser: Awaited<ReturnType<typeof startParser>>;
  influxUrl: string;
  children: Child[];
}

/** The whole pipeline on free ports; the probe traces only `ports` (its flags appended). */
async function pipeline(t: TestContext, probeArgs: (serverPort: number) => Promise<string[]>): Promise<Bed> {
  const nats = await startNats({ jetstream: true });
  t.after(() => nats.stop());
  const url = `nats://127.0.0.1:${nats.port}`;
  const influx = await startInflux();
  t.after(() => influx.stop());
  const influxUrl = `http://127.0.0.1:${influx.port}`;
  const server = await runChild("overload-server", SERVER);
  t.after(() => server.kill());
  const port = Number((await server.waitLine(/^PORT (\d+)/))[1]);
  const parser = await startParser(url);
  t.after(() => parser.proc.stop());
  // short windows: every request is written a few seconds after the load ends
  const agg = await startAggregator(url, influxUrl, DB, ["--window-ms", "2000", "--grace-ms", "1000", "--no-spans"]);
  t.after(() => agg.stop());
  const dir = tempDir("wirescope-overload-");
  const grpcPort = await freePort();
  const metricsPort = await freePort();
  const probe = await spawnProbe(url, grpcPort, dir, ["--allow-port", String(port), "--metrics-port", String(metricsPort), ...(await probeArgs(port))]);
  t.after(() => probe.stop());
  const ctl = createClient(ProbeService, `127.0.0.1:${grpcPort}`);
  t.after(() => ctl.close());
  const probeCounters = async () => (await ctl.status({}, { timeoutMs: 3000 })).counters as Record<string, number>;
  // attached and publishing: a warm-up request's record reaches InfluxDB (its own path, not counted)
  await waitFor(
    async () => {
      if (probe.hasExited) throw new Error(`the probe exited: ${probe.tail()}`);
      // a new connection each time: under sampling, some are observed
      await new Promise((resolve, reject) => http.get({ host: "127.0.0.1", port, path: "/warmup", agent: false }, (r) => r.resume().on("end", resolve)).on("error", reject));
      return (await rows(influxUrl, DB, "SELECT sum(requests) FROM red WHERE resource = '/warmup'").catch(() => [])).length > 0;
    },
    { timeoutMs: 30_000, intervalMs: 500, what: "a warm-up request recorded" },
  );
  const metrics = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return { port, metrics, probeCounters, parser, influxUrl, children: [server] };
}

/** Requests to /load recorded in InfluxDB per role, waiting until both settle (bounded). */
async function recorded(bed: Bed, expectAtLeast: number): Promise<{ server: number; client: number; observed: { server: number; client: number }; lines: Record<string, unknown>[] }> {
  let last = "";
  let stable = 0;
  let out = { server: 0, client: 0, observed: { server: 0, client: 0 }, lines: [] as Record<string, unknown>[] };
  await waitFor(
    async () => {
      const lines = await rows(bed.influxUrl, DB, `SELECT requests, observed_requests, observed_fraction, sampled, role FROM red WHERE resource = '/load'`);
      const sum = (role: string, seen = false) =>
        lines.filter((l) => l.role === role).reduce((a, l) => a + Number(seen && l.sampled === true ? l.observed_requests : l.requests), 0);
      out = { server: sum("server"), client: sum("client"), observed: { server: sum("server", true), client: sum("client", true) }, lines };
      const now = `${out.server}/${out.client}`;
      stable = now === last ? stable + 1 : 0;
      last = now;
      // two windows in a row with nothing new, and something for both ends
      return out.server >= expectAtLeast && out.client >= expectAtLeast && stable >= 3;
    },
    { timeoutMs: 30_000, intervalMs: 1000, what: `requests to /load in InfluxDB (last ${last})` },
  ).catch((e) => {
    throw new Error(`${(e as Error).message}: ${JSON.stringify(out)}`);
  });
  return out;
}

test("overload: a fixed observed fraction sheds whole connections in the kernel; requests in InfluxDB at both ends are observed + shed, exactly, and marked sampled", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  // 0.3 of 16 connections: 4 or 5 observed (systematic, n x f +- 1), so 1 / fraction alone says
  // 2,000 or 2,500 for 2,400 sent (-17 % or +4 %): the counts must come from the probe's count of
  // what each end served or was answered while shed (ShedReport), not from the weights
  const fraction = 0.3;
  const bed = await pipeline(t, async () => ["--sample-fraction", String(fraction)]);
  // the probe's counters are read from the kernel once a second: wait for a reading that holds
  // the warm-up's shed connections, so the differences below hold only the load's; and past the
  // warm-up's last 2 s window, so that its shed requests are not counted with the load's
  await new Promise((r) => setTimeout(r, 2500));
  const before = await bed.probeCounters();
  // 16 keep-alive connections, 150 requests each at 50 requests/s per connection
  const conns = 16;
  const perConn = 150;
  const sent = conns * perConn;
  const { stdout } = await run("h2load", ["--h1", "-c", String(conns), "--rps", "50", "-n", String(sent), `http://127.0.0.1:${bed.port}/load`], { timeout: 60_000 });
  assert.match(stdout, new RegExp(`requests: ${sent} total, ${sent} started, ${sent} done, ${sent} succeeded`), stdout);
  const got = await recorded(bed, sent * 0.7);
  t.diagnostic(`sent ${sent}; InfluxDB: server ${got.server}, client ${got.client}`);
  // exact but for rounding (each window's series are written rounded)
  const windows = new Set(got.lines.map((l) => l.time)).size;
  for (const [role, n] of Object.entries({ server: got.server, client: got.client })) {
    assert.ok(Math.abs(n - sent) <= windows, `${role}: ${n} recorded for ${sent} sent (observed + shed; ±${windows} for rounding)`);
  }
  // Marked sampled, but for the load's first or last window of a role: there the shed connections
  // may have served nothing (their tick's requests went with the report of the window beside it),
  // and the aggregator counts observed + 0, exact, unsampled (Aggregator.countShed). Seen once in
  // CI (2026-12-04, the counts exact; which window it was is not known: the message then printed
  // only the first three points).
  const edges = new Set<string>();
  for (const role of ["server", "client"]) {
    const times = got.lines.filter((l) => l.role === role).map((l) => String(l.time)).sort();
    if (times.length) edges.add(`${role} ${times[0]}`).add(`${role} ${times.at(-1)}`);
  }
  const inside = got.lines.filter((l) => !edges.has(`${String(l.role)} ${String(l.time)}`));
  assert.ok(inside.every((l) => l.sampled === true), `every point inside the load is marked sampled; these are not: ${JSON.stringify(inside.filter((l) => l.sampled !== true))} (of ${got.lines.length})`);
  assert.ok(got.lines.some((l) => l.sampled === true), "the load's points are marked sampled");
  const after = await bed.probeCounters();
  const d = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
  const shed = d("shed_connections.budget");
  // 0.7 of the 16 connections +- 1, at each end (the second end follows the first's decision)
  assert.ok(shed >= 2 * 10 && shed <= 2 * 13, `connections shed by the budget at both ends: ${shed}`);
  assert.ok(d("shed_reports_published") > 0, "the probe reported what it served while shed");
  // the estimate aside, what was sent is accounted for exactly at each end: the requests observed
  // (observed_requests of the sampled points) and those the kernel counted as answered on shed
  // connections
  const shedRequests = { server: d("shed_requests_server.budget"), client: d("shed_requests_client.budget") };
  t.diagnostic(`observed ${JSON.stringify(got.observed)}, shed ${JSON.stringify(shedRequests)}`);
  for (const role of ["server", "client"] as const) {
    assert.ok(shedRequests[role] > 0, `${role}: requests on shed connections counted`);
    assert.equal(got.observed[role] + shedRequests[role], sent, `${role}: ${got.observed[role]} observed + ${shedRequests[role]} shed = ${sent} sent`);
  }
  assert.equal(after.sample_fraction, fraction);
  const lost = Object.entries(after).filter(([k, v]) => /^drops\./.test(k) && v > (before[k] ?? 0));
  assert.deepEqual(lost, [], "nothing lost: shedding is not loss");
});

test("overload: a flood of random bytes on one connection is shed (counted); every other request is still recorded exactly, unsampled", { timeout: 120_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  let sinkPort = 0;
  const sinkBox: Child[] = [];
  const bed = await pipeline(t, async () => {
    const sink = await runChild("overload-sink", SINK);
    sinkBox.push(sink);
    sinkPort = Number((await sink.waitLine(/^PORT (\d+)/))[1]);
    return ["--allow-port", String(sinkPort)];
  });
  t.after(() => sinkBox.forEach((c) => c.kill()));
  const before = await bed.probeCounters();
  // the keep-alive load starts first; the flood joins while it runs
  const conns = 8;
  const sent = conns * 200;
  const load = run("h2load", ["--h1", "-c", String(conns), "--rps", "40", "-n", String(sent), `http://127.0.0.1:${bed.port}/load`], { timeout: 60_000 });
  await new Promise((r) => setTimeout(r, 1000));
  const flood = await runChild("overload-flood", FLOOD, [String(sinkPort), "3000"]);
  t.after(() => flood.kill());
  await flood.waitLine(/^FLOODING/, 15_000);
  const floodBytes = Number((await flood.waitLine(/^SENT (\d+)/, 30_000))[1]);
  const { stdout } = await load;
  assert.match(stdout, new RegExp(`requests: ${sent} total, ${sent} started, ${sent} done, ${sent} succeeded`), stdout);
  assert.ok(floodBytes > 64 << 20, `the flood moved ${floodBytes} bytes`);

  const got = await recorded(bed, sent);
  t.diagnostic(`sent ${sent} requests beside a flood of ${(floodBytes / 2 ** 20).toFixed(0)} MiB; recorded server ${got.server}, client ${got.client}`);
  assert.equal(got.server, sent, "every request recorded at the server");
  assert.equal(got.client, sent, "every request recorded at the client");
  assert.ok(got.lines.every((l) => l.sampled === false && Number(l.observed_fraction) === 1), "not sampled");

  const after = await bed.probeCounters();
  const d = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
  assert.ok(d("shed_connections.conn_flood") >= 1, `the flood connection was shed: ${JSON.stringify(after)}`);
  assert.ok(d("shed_bytes.conn_flood") > floodBytes / 2, `most of the flood was not copied: ${d("shed_bytes.conn_flood")} of ${floodBytes}`);
  // the sink never answers: no request is counted as served on the shed connection
  assert.equal(d("shed_requests_server.conn_flood"), 0, "nothing served on the flood's connection");
  assert.equal(d("shed_requests_client.conn_flood"), 0, "nothing answered on it");
  const lost = Object.entries(after).filter(([k, v]) => /^drops\./.test(k) && v > (before[k] ?? 0));
  assert.deepEqual(lost, [], "nothing lost");
  // the same counters in Prometheus
  const prom = await bed.metrics();
  const shedSeries = /^wirescope_shed_connections_total\{[^}]*key="conn_flood"[^}]*\} (\d+)/m.exec(prom);
  assert.ok(shedSeries && Number(shedSeries[1]) >= 1, `wirescope_shed_connections_total{key="conn_flood"} in /metrics: ${prom.split("\n").filter((l) => l.includes("shed")).join("\n")}`);
  assert.match(prom, /^wirescope_sample_fraction\{[^}]*\} 1$/m);
  assert.match(prom, /^wirescope_shed_requests_server_total\{[^}]*key="conn_flood"[^}]*\} 0$/m);
  const ps = await parserStatus(bed.parser);
  assert.ok((ps.counters["conns_shed_by_probe.conn_flood"] ?? 0) >= 1, `the parser heard of the shed connection: ${JSON.stringify(ps.counters)}`);
});

/**
 * The keep-alive server and an EbpfSource of its port, everything observed at first, with what
 * each connection end went through: its steps (opens with their fraction, sheds, closes), the
 * first bytes of each of its streams (the data at seq 0 of each direction: every open starts a
 * stream at 0) and the requests a server end was given. Each open gets the copy policy the
 * trimmer gives a followed HTTP/1.1 connection, so its turns are boundaries.
 */
async function boundaryBed(t: TestContext, name: string) {
  const server = await runChild(name, SERVER);
  t.after(() => server.kill());
  const port = Number((await server.waitLine(/^PORT (\d+)/))[1]);
  const src = new EbpfSource({ mountTracefs: true, filter: { ...EMPTY_FILTER, allowPorts: [port] } });
  const fairness = { ringbufPct: 0, intervalMs: 1000, connBytes: 0, connCalls: 0, procBytes: 0 };
  src.setShedConfig({ sampleFraction: 1, ...fairness });
  type End = { role: number; ours: boolean; steps: string[]; startIngress: string[]; startEgress: string[]; gets: number };
  const ends = new Map<bigint, End>();
  const ac = new AbortController();
  const done = src.run((b) => {
    for (const c of b.conns) {
      let e = ends.get(c.connKey);
      // the filter lets through any socket with this port at either end: ours are h2load's to the server
      const ours = c.localAddress === "127.0.0.1" && c.remoteAddress === "127.0.0.1" && (c.role === 2 ? c.localPort : c.remotePort) === port;
      if (!e) ends.set(c.connKey, (e = { role: c.role, ours, steps: [], startIngress: [], startEgress: [], gets: 0 }));
      if (c.kind === "open") {
        e.steps.push(`open ${c.observedFraction}`);
        src.setCopyPolicy(c.connKey, FOLLOWED);
      } else e.steps.push(c.shed ? `shed ${c.shed}` : "close");
    }
    for (const d of b.data) {
      const e = ends.get(d.connKey);
      if (e && d.seq === 0n) (d.direction === 2 ? e.startIngress : e.startEgress).push(Buffer.from(d.payload.subarray(0, 4)).toString("latin1"));
      // requests the server end was given (h2load sends one at a time: no pipelining)
      if (e?.role === 2 && d.direction === 2) e.gets += Buffer.from(d.payload).toString("latin1").split("GET /load").length - 1;
    }
  }, ac.signal);
  t.after(() => (ac.abort(), done));
  /** h2load's end: the requests it had answered, and our ends that started observed, once their last events are in. */
  const finish = async (load: Promise<{ stdout: string }>) => {
    const { stdout } = await load;
    const answered = Number(/requests: \d+ total, \d+ started, (\d+) done, \1 succeeded/.exec(stdout)?.[1] ?? Number.NaN);
    assert.ok(answered > 0, stdout);
    await new Promise((r) => setTimeout(r, 500));
    return { answered, mine: [...ends.values()].filter((e) => e.ours && e.steps[0] === "open 1") };
  };
  return { src, port, fairness, finish };
}

test("overload: a new level reaches keep-alive connections at a request boundary: shed or re-opened between two requests, never inside one", { timeout: 90_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const { src, port, fairness, finish } = await boundaryBed(t, "redecide-server");
  // 8 keep-alive connections, 20 requests/s each, for 9 s: the level goes 1 -> 0.5 -> 1 meanwhile
  const load = run("h2load", ["--h1", "-c", "8", "--rps", "20", "-D", "9", `http://127.0.0.1:${port}/load`], { timeout: 60_000 });
  await new Promise((r) => setTimeout(r, 3000));
  src.setShedConfig({ sampleFraction: 0.5, ...fairness });
  await new Promise((r) => setTimeout(r, 3000));
  src.setShedConfig({ sampleFraction: 1, ...fairness });
  const { answered, mine } = await finish(load);
  const servers = mine.filter((e) => e.role === 2);
  const clients = mine.filter((e) => e.role === 1);
  t.diagnostic(`server ends: ${servers.map((e) => e.steps.join(",")).join(" | ")}`);
  assert.equal(servers.length, 8, "h2load's 8 connections at the server");
  assert.equal(clients.length, 8, "and at the client");
  for (const side of [servers, clients]) {
    const shed = side.filter((e) => e.steps.includes("shed budget"));
    // half of them, +-1 (systematic per process; the second end follows the first)
    assert.ok(shed.length >= 3 && shed.length <= 5, `shed at 0.5: ${shed.length} of 8: ${side.map((e) => e.steps.join(",")).join(" | ")}`);
    for (const e of side) {
      const kept = !e.steps.includes("shed budget");
      // observed -> shed -> observed again, or observed throughout with its level stated each time
      assert.deepEqual(e.steps.slice(0, 3), kept ? ["open 1", "open 0.5", "open 1"] : ["open 1", "shed budget", "open 1"], e.steps.join(","));
    }
  }
  // every request is accounted for at the server ends: given to user space, or counted by the
  // kernel as answered while its connection was shed
  const given = servers.reduce((a, e) => a + e.gets, 0);
  const shedRequests = src.shedStats().serverRequests.budget ?? 0;
  t.diagnostic(`${answered} answered: ${given} given to user space, ${shedRequests} on shed connections`);
  assert.ok(shedRequests > 0, "requests on shed connections counted");
  assert.equal(given + shedRequests, answered, "answered = given + shed");
  // every stream given to user space starts at a request: the server reads "GET " at seq 0, the
  // client writes it; a response never comes first, and each open has its stream
  for (const e of mine) {
    const opens = e.steps.filter((x) => x.startsWith("open")).length;
    const requests = e.role === 2 ? e.startIngress : e.startEgress;
    const responses = e.role === 2 ? e.startEgress : e.startIngress;
    assert.deepEqual(requests, Array(opens).fill("GET "), `${e.role === 2 ? "server" : "client"} end, ${e.steps.join(",")}`);
    assert.deepEqual(responses, Array(opens).fill("HTTP"), `${e.role === 2 ? "server" : "client"} end, ${e.steps.join(",")}`);
  }
});

test("overload: while steered, every epoch decides keep-alive connections again at an unchanged level, so each is observed for its share of the epochs, not frozen", { timeout: 90_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const { src, port, fairness, finish } = await boundaryBed(t, "epoch-server");
  // 8 keep-alive connections, 20 requests/s each, for 9 s; after 2 s the level goes to 0.3 and
  // stays there, with a new epoch every 400 ms (what the steering does every tick while it samples)
  const load = run("h2load", ["--h1", "-c", "8", "--rps", "20", "-D", "9", `http://127.0.0.1:${port}/load`], { timeout: 60_000 });
  await new Promise((r) => setTimeout(r, 2000));
  let epoch = 0;
  const epochs = 15;
  for (let i = 0; i < epochs; i++) {
    src.setShedConfig({ sampleFraction: 0.3, epoch: ++epoch, ...fairness });
    await new Promise((r) => setTimeout(r, 400));
  }
  src.setShedConfig({ sampleFraction: 1, epoch: ++epoch, ...fairness });
  const { answered, mine } = await finish(load);
  const servers = mine.filter((e) => e.role === 2);
  assert.equal(servers.length, 8, "h2load's 8 connections at the server");
  t.diagnostic(`server ends: ${servers.map((e) => e.steps.join(",")).join(" | ")}`);
  // Decided once per change of level, each connection would have been observed or shed for the
  // whole stretch at 0.3 (one step each: an open at 0.3 or "shed budget"). Decided again every epoch,
  // most are observed in some epochs and shed in others: 8 x 0.3 = 2.4 of them per epoch, drawn
  // afresh (a random phase per epoch), so over 15 epochs a connection stays on one side all along
  // with a chance of 0.7^15 + 0.3^15, about 0.5 %.
  const observedAt = `open ${Math.round(0.3 * 32768) / 32768}`; // the kernel's level, in steps of 1/32768
  const both = servers.filter((e) => e.steps.includes(observedAt) && e.steps.includes("shed budget"));
  assert.ok(both.length >= 6, `connections observed in some epochs and shed in others: ${both.length} of 8`);
  const flips = servers.reduce((a, e) => a + e.steps.filter((s) => s === "shed budget").length, 0);
  assert.ok(flips >= 8, `sheds at an unchanged level: ${flips}`);
  // and what was served is still accounted for exactly: given to user space, or counted as
  // answered while shed; every stream given starts at a request (decided at boundaries only)
  const given = servers.reduce((a, e) => a + e.gets, 0);
  const shedRequests = src.shedStats().serverRequests.budget ?? 0;
  t.diagnostic(`${answered} answered: ${given} given to user space, ${shedRequests} on shed connections, ${flips} sheds`);
  assert.equal(given + shedRequests, answered, "answered = given + shed");
});

// Both ends of one connection in one process, stepped from stdin, so that the test chooses when a
// new epoch begins: between the client's write of a request (where the client end decides) and
// the server's read of it (where the server end takes the client's decision).
const STEPPER = String.raw`
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(1)
print("PORT", srv.getsockname()[1], flush=True)
cli = conn = None
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "connect":
        cli = socket.create_connection(("127.0.0.1", srv.getsockname()[1])); conn, _ = srv.accept()
    elif cmd == "w":
        cli.sendall(("GET /r%s HTTP/1.1\r\nHost: x\r\n\r\n" % arg).encode())
    elif cmd == "r":
        conn.recv(65536); conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    elif cmd == "c":
        got = b""
        while not got.endswith(b"ok"): got += cli.recv(65536)
    print("ok", flush=True)
`;

test("overload: an epoch that begins while a request is between the client's write and the server's read leaves both ends deciding alike, request by request", { timeout: 60_000 }, async (t) => {
  if (!bpfAvailable(t)) return;
  const child = spawn("python3", ["-c", STEPPER], { stdio: ["pipe", "pipe", "inherit"] });
  t.after(() => child.kill("SIGKILL"));
  const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => String((await lines.next()).value ?? "");
  const port = Number(/^PORT (\d+)/.exec(await next())?.[1]);
  assert.ok(port > 0, "the stepper listens");
  const step = async (cmd: string) => {
    child.stdin!.write(`${cmd}\n`);
    assert.equal(await next(), "ok", cmd);
  };
  const src = new EbpfSource({ mountTracefs: true, filter: { ...EMPTY_FILTER, allowPorts: [port] } });
  const fairness = { ringbufPct: 0, intervalMs: 1000, connBytes: 0, connCalls: 0, procBytes: 0 };
  src.setShedConfig({ sampleFraction: 1, ...fairness });
  // per end (by role): its steps and the requests it was given (the server reads them, the client writes them)
  const ends = new Map<bigint, { role: number; steps: string[]; requests: number[] }>();
  const ac = new AbortController();
  const done = src.run((b) => {
    for (const c of b.conns) {
      let e = ends.get(c.connKey);
      if (!e) ends.set(c.connKey, (e = { role: c.role, steps: [], requests: [] }));
      if (c.kind === "open") {
        e.steps.push(`open ${c.observedFraction}`);
        src.setCopyPolicy(c.connKey, FOLLOWED); // a followed HTTP/1.1 connection: its turns are boundaries
      } else e.steps.push(c.shed ? `shed ${c.shed}` : "close");
    }
    for (const d of b.data) {
      const e = ends.get(d.connKey);
      if (!e || d.direction !== (e.role === 2 ? 2 : 1)) continue;
      for (const m of Buffer.from(d.payload).toString("latin1").matchAll(/GET \/r(\d+) /g)) e.requests.push(Number(m[1]));
    }
  }, ac.signal);
  t.after(() => (ac.abort(), done));
  await step("connect");
  await waitFor(() => [...ends.values()].filter((e) => e.steps.length > 0).length === 2, { timeoutMs: 10_000, what: "both ends opened" });
  await new Promise((r) => setTimeout(r, 200)); // their copy policies are in
  const request = async (n: number, beforeRead?: () => void) => {
    await step(`w ${n}`);
    beforeRead?.();
    await step("r");
    await step("c");
  };
  await request(0);
  await request(1);
  // Rounds of two requests at 0.5: a new epoch before the first, and another one between its
  // write and its read; the second request runs inside that epoch.
  let epoch = 0;
  const rounds = 24;
  for (let i = 1; i <= rounds; i++) {
    src.setShedConfig({ sampleFraction: 0.5, epoch: ++epoch, ...fairness });
    await request(2 * i, () => src.setShedConfig({ sampleFraction: 0.5, epoch: ++epoch, ...fairness }));
    await request(2 * i + 1);
  }
  src.setShedConfig({ sampleFraction: 1, epoch: ++epoch, ...fairness });
  await request(2 * rounds + 2);
  await waitFor(() => [...ends.values()].every((e) => e.requests.includes(2 * rounds + 2)), { timeoutMs: 10_000, what: "the last request at both ends" });
  const server = [...ends.values()].find((e) => e.role === 2)!;
  const client = [...ends.values()].find((e) => e.role === 1)!;
  t.diagnostic(`server: ${server.steps.join(",")}; requests ${server.requests.join(" ")}`);
  t.diagnostic(`client: ${client.steps.join(",")}; requests ${client.requests.join(" ")}`);
  // The server end takes the client's decision and the epoch it was made in. Counting itself in
  // the epoch in force instead, it skipped the next request's decision and the ends went on
  // taking each other's decisions one epoch late: calls seen at one end only.
  assert.deepEqual(server.requests, client.requests, "the same requests observed at both ends");
  const observed = server.requests.filter((n) => n >= 2 && n <= 2 * rounds + 1).length;
  assert.ok(observed > 0 && observed < 2 * rounds, `at 0.5, some of the ${2 * rounds} requests observed and some shed: ${observed}`);
});
