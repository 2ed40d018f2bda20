// The traffic shapes of the pipeline benchmark: each a function that starts a real server in its
// own process and returns a load function that sends a fixed number of requests at a fixed rate
// from a real client in its own process (h2load, or a paced @grpc/grpc-js / mysql2 client), and
// reports what the client saw. Process names are unique ("wsb-…", h2load through a symlink named
// wsb-h2load) so that the records of this traffic can be told apart in InfluxDB from those of
// anything else running on the machine: the probe traces every process.
import fs from "node:fs";
import path from "node:path";
import { execFile, execFileSync } from "node:child_process";
import { tempDir } from "../support/index.js";
import { startMariaDb } from "../support/mariadb.js";
import { runChild, CHILD_REQUIRE, type Child } from "../probe-support.js";

/** One measured run: `requests` requests offered at `rate` per second. */
export interface Load {
  rate: number;
  requests: number;
  /** Requests per connection (the `per-conn` shape only). */
  perConn?: number;
}

/** What the client saw. */
export interface LoadResult {
  /** Requests answered successfully. */
  ok: number;
  failed: number;
  /** Achieved requests per second (wall clock, first request to last answer). */
  rps: number;
  p99ms: number;
}

export interface RunningShape {
  /** `service` tag of the server end's records in InfluxDB. */
  serverService: string;
  /** `service` tag of the client end's records. */
  clientService: string;
  /** Only records of this `operation` are this load's requests (others: connection set-up). */
  operation?: string;
  serverPid: number;
  load(l: Load): Promise<LoadResult>;
  /** Requests the server has handled so far (undefined when the server cannot tell). */
  handled(): Promise<number | undefined>;
  stop(): Promise<void>;
}

export interface Shape {
  name: string;
  /** One line for the report. */
  what: string;
  /** "req/s" or "conn/s": what a row's rate counts. */
  unit: string;
  start(): Promise<RunningShape>;
}

const dir = tempDir("wirescope-pipeline-bench-");
const BODY = 512;

// servers, clients and load generators this benchmark started: killed by pid if it exits early
const running = new Set<{ kill(): void }>();
process.once("exit", () => {
  for (const c of running) c.kill();
});

// h2load under its own name, so that its records have their own service tag
const H2LOAD = path.join(dir, "wsb-h2load");
function h2loadPath(): string {
  if (!fs.existsSync(H2LOAD)) fs.symlinkSync(execFileSync("sh", ["-c", "command -v h2load"]).toString().trim(), H2LOAD);
  return H2LOAD;
}

let logSeq = 0;
/** Runs h2load (count mode) against `url`; p99 from its per-request log. */
function h2load(args: string[], url: string, l: Load): Promise<LoadResult> {
  const log = path.join(dir, `h2load-${++logSeq}.log`);
  const timeoutMs = (l.requests / l.rate) * 4000 + 60_000;
  return new Promise((resolve, reject) => {
    const p = execFile(h2loadPath(), [...args, "-n", String(l.requests), `--log-file=${log}`, url], { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      running.delete(handle);
      const fin = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(stdout);
      const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(stdout);
      if (err || !fin || !req) return reject(new Error(`h2load ${args.join(" ")} failed: ${err?.message ?? ""}\n${stdout}\n${stderr}`));
      const lat = new Float64Array(
        fs.readFileSync(log, "utf8").split("\n").filter(Boolean).map((line) => Number(line.split("\t")[2]) / 1000),
      ).sort();
      fs.rmSync(log, { force: true });
      resolve({ ok: Number(req[4]), failed: Number(req[5]), rps: Number(fin[3]), p99ms: percentile(lat, 0.99) });
    });
    const handle = { kill: () => p.exitCode === null && p.kill("SIGKILL") };
    running.add(handle);
  });
}

export function percentile(sorted: Float64Array, q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] : NaN;
}

/** Spawns a server module that prints "PORT n" once listening and "COUNT n" on SIGUSR2. */
async function server(name: string, source: string): Promise<{ child: Child; port: number; handled(): Promise<number> }> {
  const child = await runChild(name, `${CHILD_REQUIRE}process.title = ${JSON.stringify(name)};\nlet handled = 0;\nprocess.on("SIGUSR2", () => console.log("COUNT " + handled));\n${source}`);
  running.add(child);
  const port = Number((await child.waitLine(/^PORT (\d+)/, 30_000))[1]);
  return {
    child,
    port,
    handled: async () => {
      child.lines.length = 0;
      process.kill(child.pid, "SIGUSR2");
      return Number((await child.waitLine(/^COUNT (\d+)/))[1]);
    },
  };
}

const HTTP1_SERVER = `const http = require("node:http");
const body = Buffer.alloc(${BODY}, "x");
const srv = http.createServer((req, res) => { handled++; res.writeHead(200, { "content-type": "text/plain" }); res.end(body); });
srv.keepAliveTimeout = 60_000;
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));`;

const HTTP2_SERVER = `const http2 = require("node:http2");
const body = Buffer.alloc(${BODY}, "x");
const srv = http2.createServer({ settings: { maxConcurrentStreams: 256 } });
srv.on("stream", (s) => { handled++; s.respond({ ":status": 200, "content-type": "text/plain" }); s.end(body); });
srv.listen(0, "127.0.0.1", () => console.log("PORT " + srv.address().port));`;

// a unary method with raw bytes as messages: no .proto needed, the wire is real gRPC
const GRPC_DEF = `const grpc = require("@grpc/grpc-js");
const id = (b) => b;
const def = { Unary: { path: "/bench.Echo/Unary", requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } };`;

const GRPC_SERVER = `${GRPC_DEF}
const reply = Buffer.alloc(${BODY}, "x");
const srv = new grpc.Server();
srv.addService(def, { Unary: (call, cb) => { handled++; cb(null, reply); } });
srv.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, port) => { if (e) throw e; console.log("PORT " + port); });`;

// Sends n requests at a fixed rate (at most maxInFlight outstanding); stops issuing after twice
// the planned duration (a saturated app), so a row stays bounded in time; resolves with LoadResult.
const PACED = `function paced(n, rate, maxInFlight, issue) {
  return new Promise((resolve) => {
    const lat = new Float64Array(n);
    let issued = 0, done = 0, failed = 0, inflight = 0, firstError;
    const t0 = performance.now();
    const stopAt = t0 + (2 * n * 1000) / rate;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      const secs = (performance.now() - t0) / 1000;
      const l = lat.subarray(0, issued).sort();
      resolve({ ok: issued - failed, failed, rps: issued / secs, p99ms: l[Math.min(issued - 1, Math.floor(issued * 0.99))], firstError });
    };
    const pump = () => {
      if (performance.now() > stopAt) n = issued;
      const due = Math.min(n, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
      while (issued < due && inflight < maxInFlight) {
        const i = issued++;
        const s = performance.now();
        inflight++;
        issue(i, (err) => {
          lat[i] = performance.now() - s;
          inflight--;
          done++;
          if (err) { failed++; firstError ??= String(err.message ?? err); }
          if (done === n) finish();
        });
      }
      if (issued < n) setTimeout(pump, 1);
      else if (done === n && !inflight) finish();
    };
    pump();
  });
}`;

async function runClient(name: string, source: string, args: (string | number)[]): Promise<LoadResult> {
  const c = await runChild(name, `${CHILD_REQUIRE}process.title = ${JSON.stringify(name)};\n${PACED}\n${source}`, args.map(String));
  running.add(c);
  const r = JSON.parse((await c.waitLine(/^RESULT (.*)/, 3_600_000))[1]) as LoadResult & { firstError?: string };
  await c.exited;
  running.delete(c);
  if (r.failed) console.log(`  ${name}: ${r.failed} requests failed, first: ${r.firstError}`);
  return r;
}

const GRPC_CLIENT = `${GRPC_DEF}
const [port, rate, n] = process.argv.slice(2).map(Number);
const Client = grpc.makeGenericClientConstructor(def, "Echo");
const client = new Client("127.0.0.1:" + port, grpc.credentials.createInsecure());
await new Promise((res, rej) => client.waitForReady(Date.now() + 15000, (e) => (e ? rej(e) : res())));
const req = Buffer.alloc(32, 1);
const r = await paced(n, rate, 128, (i, done) => client.Unary(req, done));
console.log("RESULT " + JSON.stringify(r));
client.close();
process.exit(0);`;

const MYSQL_CLIENT = `const mysql = require("mysql2");
const [port, rate, n] = process.argv.slice(2).map(Number);
const pool = mysql.createPool({ host: "127.0.0.1", port, user: "root", database: "bench", connectionLimit: 8 });
// the pool's 8 connections are opened (handshakes) before the paced part
const conns = await Promise.all(Array.from({ length: 8 }, () => new Promise((res, rej) => pool.getConnection((e, c) => (e ? rej(e) : res(c))))));
for (const c of conns) c.release();
const r = await paced(n, rate, 64, (i, done) => pool.query("SELECT id, name, email FROM users WHERE id = ?", [(i % 1000) + 1], (e) => done(e)));
console.log("RESULT " + JSON.stringify(r));
pool.end();
process.exit(0);`;

function h2loadShape(name: string, what: string, unit: string, serverSource: string, args: (l: Load) => string[]): Shape {
  return {
    name,
    what,
    unit,
    start: async () => {
      const srv = await server(`wsb-${name}`, serverSource);
      return {
        serverService: `wsb-${name}:${srv.port}`,
        clientService: "wsb-h2load",
        serverPid: srv.child.pid,
        load: (l) => h2load(args(l), `http://127.0.0.1:${srv.port}/x`, l),
        handled: srv.handled,
        stop: async () => srv.child.kill(),
      };
    },
  };
}

/** Connections per `--rate-period`: h2load opens `k` every `periodMs`, `perSecond` on average. */
function connRate(perSecond: number): string[] {
  const periodMs = perSecond >= 100 ? 10 : Math.round(1000 / perSecond);
  return ["-r", String(Math.max(1, Math.round((perSecond * periodMs) / 1000))), `--rate-period=${periodMs}ms`];
}

export const SHAPES: Record<string, Shape> = {
  http1: h2loadShape("http1", "HTTP/1.1 keep-alive: node:http, 512-byte bodies, h2load --h1 -c 16 --rps", "req/s", HTTP1_SERVER, (l) => ["--h1", "-c", "16", `--rps=${l.rate / 16}`]),
  http2: h2loadShape("http2", "HTTP/2: node:http2 (h2c), 512-byte bodies, h2load -c 4 -m 32 --rps", "req/s", HTTP2_SERVER, (l) => ["-c", "4", "-m", "32", `--rps=${l.rate / 4}`]),
  grpc: {
    name: "grpc",
    what: "gRPC unary: @grpc/grpc-js server, 512-byte replies; a paced grpc-js client (one channel) in its own process",
    unit: "req/s",
    start: async () => {
      const srv = await server("wsb-grpc", GRPC_SERVER);
      return {
        serverService: `wsb-grpc:${srv.port}`,
        clientService: "wsb-grpc-cli",
        serverPid: srv.child.pid,
        load: (l) => runClient("wsb-grpc-cli", GRPC_CLIENT, [srv.port, l.rate, l.requests]),
        handled: srv.handled,
        stop: async () => srv.child.kill(),
      };
    },
  },
  newconn: h2loadShape(
    "newconn",
    "new connections: one request per connection (Connection: close), node:http, h2load --h1 -r",
    "conn/s",
    HTTP1_SERVER,
    (l) => ["--h1", "-c", String(l.requests), ...connRate(l.rate), "-H", "Connection: close"],
  ),
  mysql: {
    name: "mysql",
    what: "MySQL: a mysql2 pool of 8 connections -> MariaDB, primary-key SELECT of 1,000 rows, paced, in its own process",
    unit: "req/s",
    start: async () => {
      const db = await startMariaDb({ skipGrantTables: true });
      await db.sql(
        "CREATE DATABASE bench; USE bench; CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(64), email VARCHAR(128)); " +
          "INSERT INTO users SELECT seq, CONCAT('user', seq), CONCAT('user', seq, '@example.com') FROM seq_1_to_1000;",
      );
      return {
        serverService: `mariadbd:${db.port}`,
        clientService: "wsb-mysql-cli",
        operation: "COM_QUERY", // not the pool's LOGIN and COM_QUIT records
        serverPid: db.proc.pid,
        load: (l) => runClient("wsb-mysql-cli", MYSQL_CLIENT, [db.port, l.rate, l.requests]),
        handled: async () => undefined,
        stop: () => db.stop(),
      };
    },
  },
  // R requests per connection at a fixed total rate: with few connections (R large) all are open
  // at once and paced; otherwise h2load opens rate/R connections per second, each sending its R
  // requests back to back
  "per-conn": h2loadShape("per-conn", "requests per connection: node:http, h2load --h1, R requests on each connection", "req/s", HTTP1_SERVER, (l) => {
    const conns = Math.max(1, Math.round(l.requests / (l.perConn ?? l.requests)));
    return conns <= 16 ? ["--h1", "-c", String(conns), `--rps=${l.rate / conns}`] : ["--h1", "-c", String(conns), ...connRate(l.rate / (l.perConn ?? 1))];
  }),
};
