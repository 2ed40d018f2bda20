// The parser's data path in process (no NATS): RawBatch messages shaped as the probe publishes
// them (both ends of every connection traced, ~25 events a message on 64 partitions, opens before
// and closes after the data) fed to `Pipeline.onRawBytes` with the built-in plugins, as the
// parser service does. Compares the parser's CPU per record of HTTP/1.1 with 10 requests per
// connection against the same requests on one keep-alive connection (issue 9), without the
// rest of the stack, and counts the per-connection work.
//
//   npm run bench -- parser-conn            (or: node --expose-gc test/dist/parser-conn.bench.js)
//     REQUESTS (default 4000) requests of h2load --h1 against node:http (512-byte bodies),
//     captured through a loopback relay: PER_CONN (default 10) per connection, and all on one;
//     batched as the probe would at RATE (default 5000) requests a second;
//     LOOPS (default 5) replays on new connections (conn_key changed) after WARMUP (default 1)
//     unmeasured ones; ROUNDS (default 3), the shapes alternating. VERBOSE=1 prints counters;
//     ONLY=per or ONLY=one measures that shape alone (for a profile).
//     Files given as arguments ([u16 partition][f64 ms][u32 length][RawBatch]* gzipped, as
//     test/fixtures/raw-http1-keepalive.bin.gz) are measured as further shapes.
//   Add --cpu-prof to node's flags to profile.
import http from "node:http";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ConnEventSchema, ConnKind, DataEventSchema, Direction, RawBatchSchema, Role, type ConnEvent, type DataEvent } from "@wirescope/wire";
import { Counters } from "@wirescope/runtime";
import { Pipeline } from "@wirescope/parser/pipeline";
import { PluginSet, LoadedPlugin } from "@wirescope/parser/wasm-plugins";
import { redactionPolicy } from "@wirescope/parser/redact";
import { DEFAULT_CONN_TABLE_OPTIONS } from "@wirescope/parser/conn-table";
import { captureThroughRelay, type Conversation } from "./parser-support.js";
import { PLUGINS_DIR } from "./support/index.js";

const run = promisify(execFile);

/** h2load --h1: `requests` in all, `perConn` on each connection, through a relay that records them. */
async function capture(requests: number, perConn: number): Promise<Conversation[]> {
  const body = Buffer.alloc(512, "x");
  const srv = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(body);
  });
  srv.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  try {
    const conns = Math.max(1, Math.round(requests / perConn));
    return await captureThroughRelay(port, "wsb-http1", async (relay) => {
      await run("h2load", ["--h1", "-n", String(requests), "-c", String(conns), `http://127.0.0.1:${relay}/x`], { timeout: 120_000 });
    });
  } finally {
    srv.close();
  }
}

type Ev = { ts: bigint; key: bigint; conn?: ConnEvent; data?: DataEvent };

/**
 * The probe's messages for these conversations: both ends traced (the server's socket with role
 * server, the client's with role client, each its own conn_key), events in time order, the
 * capture's time stretched to RATE requests a second; a partition's message is cut 50 ms after
 * its first event (the probe's --batch-ms hold).
 */
function probeMessages(convs: Conversation[], requests: number): Uint8Array[] {
  const evs: Ev[] = [];
  let key = 0x1000n;
  for (const c of convs) {
    for (const role of [Role.SERVER, Role.CLIENT]) {
      const connKey = key++;
      const local = role === Role.SERVER ? c.server : c.client;
      const remote = role === Role.SERVER ? c.client : c.server;
      const pid = role === Role.SERVER ? 4242 : 4343;
      const base = { connKey, role, localAddress: local.address, localPort: local.port, remoteAddress: remote.address, remotePort: remote.port, pid, tid: pid, process: { pid, name: role === Role.SERVER ? c.serverProcess : "wsb-h2load" } };
      const end = c.endNs || c.chunks.at(-1)!.tsNs;
      evs.push({ ts: c.startNs, key: connKey, conn: create(ConnEventSchema, { ...base, kind: ConnKind.OPEN, timestampNs: c.startNs }) });
      const off: [number, number] = [0, 0];
      for (const ch of c.chunks) {
        // the server's socket receives the client's bytes (dir 0) as ingress; the client's sends them
        const egress = role === Role.SERVER ? ch.dir === 1 : ch.dir === 0;
        const d = egress ? (role === Role.SERVER ? 1 : 0) : role === Role.SERVER ? 0 : 1;
        const data = create(DataEventSchema, { connKey, direction: egress ? Direction.EGRESS : Direction.INGRESS, seq: BigInt(off[d]!), timestampNs: ch.tsNs, tid: pid, payload: ch.bytes, originalLength: ch.bytes.length });
        off[d]! += ch.bytes.length;
        evs.push({ ts: ch.tsNs, key: connKey, data });
      }
      evs.push({ ts: end + 1n, key: connKey, conn: create(ConnEventSchema, { ...base, kind: ConnKind.CLOSE, timestampNs: end + 1n }) });
    }
  }
  evs.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
  // as if h2load had been paced at RATE: the capture (unpaced) is stretched to requests / RATE
  const t0 = evs[0]!.ts;
  const span = Number(evs.at(-1)!.ts - t0) || 1;
  const scale = (requests / RATE) * 1e9 / span;
  for (const e of evs) {
    e.ts = t0 + BigInt(Math.round(Number(e.ts - t0) * scale));
    if (e.conn) e.conn.timestampNs = e.ts;
    else e.data!.timestampNs = e.ts;
  }
  const P = 64;
  const open = new Map<number, { first: bigint; conns: ConnEvent[]; data: DataEvent[] }>();
  const seqs = new Map<number, number>();
  const out: Uint8Array[] = [];
  const emit = (p: number) => {
    const b = open.get(p)!;
    open.delete(p);
    const seq = (seqs.get(p) ?? 0) + 1;
    seqs.set(p, seq);
    out.push(toBinary(RawBatchSchema, create(RawBatchSchema, { node: "bench-node", probeId: "bench-probe", partition: p, batchSeq: BigInt(seq), conns: b.conns, data: b.data })));
  };
  for (const e of evs) {
    for (const [p, b] of open) if (e.ts - b.first > 50_000_000n) emit(p);
    const p = Number(e.key % BigInt(P));
    let b = open.get(p);
    // an open after a close of the same batch would reorder them: a new message
    if (b && e.conn?.kind === ConnKind.OPEN && b.conns.some((c) => c.connKey === e.key)) emit(p), (b = undefined);
    if (b && e.data && b.conns.some((c) => c.connKey === e.key && c.kind === ConnKind.CLOSE)) emit(p), (b = undefined);
    if (!b) open.set(p, (b = { first: e.ts, conns: [], data: [] }));
    if (e.conn) b.conns.push(e.conn);
    else b.data.push(e.data!);
  }
  for (const p of [...open.keys()]) emit(p);
  return out;
}

function load(file: string): Uint8Array[] {
  const f = zlib.gunzipSync(fs.readFileSync(file));
  const msgs: Uint8Array[] = [];
  for (let o = 0; o + 14 <= f.length; ) {
    const len = f.readUInt32LE(o + 10);
    msgs.push(f.subarray(o + 14, o + 14 + len));
    o += 14 + len;
  }
  return msgs;
}

/** The recording on connections of loop k's own (k = 0: as recorded). */
function rekey(msgs: Uint8Array[], k: number): Uint8Array[] {
  if (k === 0) return msgs;
  const x = BigInt(k) << 40n;
  return msgs.map((m) => {
    const b = fromBinary(RawBatchSchema, m);
    for (const c of b.conns) c.connKey ^= x;
    for (const d of b.data) d.connKey ^= x;
    b.probeId = `${b.probeId}~${k}`;
    return toBinary(RawBatchSchema, b);
  });
}

function plugins(): PluginSet {
  const set = new PluginSet();
  for (const f of fs.readdirSync(PLUGINS_DIR).filter((f) => f.endsWith(".json")).sort()) {
    const name = f.slice(0, -5);
    set.put(LoadedPlugin.load(JSON.parse(fs.readFileSync(path.join(PLUGINS_DIR, f), "utf8")), fs.readFileSync(path.join(PLUGINS_DIR, `${name}.wasm`)), "builtin", () => true));
  }
  return set;
}

interface Result {
  file: string;
  records: number;
  conns: number;
  cpuUs: number;
  counters: Record<string, number>;
}

function runOnce(file: string, loops: Uint8Array[][], warmup: number): Result {
  const counters = new Counters();
  const set = plugins();
  const pl = new Pipeline(set, { ...DEFAULT_CONN_TABLE_OPTIONS, node: "n", parserId: "p", partitions: 64, redaction: redactionPolicy(), maxBatchBytes: 512 * 1024, maxQueuedBatches: 1 << 20 }, counters);
  pl.setOwned(new Set([...Array(64).keys()]), () => undefined);
  let records = 0;
  let now = 0;
  const feed = (msgs: Uint8Array[]) => {
    for (const m of msgs) {
      pl.onRawBytes(m, (now += 0.3));
      if (pl.queuedBatches() > 8) for (const b of pl.takeOutput()) records += b.records;
    }
    for (const b of pl.takeOutput()) records += b.records;
  };
  for (let k = 0; k < warmup; k++) feed(loops[k]!);
  pl.closeAll();
  for (const b of pl.takeOutput()) records += b.records;
  const before = { ...counters.snapshot(), ...prefixed(set.engineCounters.snapshot()) };
  records = 0;
  (globalThis as { gc?: () => void }).gc?.();
  const cpu0 = process.cpuUsage();
  for (let k = warmup; k < loops.length; k++) feed(loops[k]!);
  pl.closeAll();
  for (const b of pl.takeOutput()) records += b.records;
  const cpu = process.cpuUsage(cpu0);
  const after = { ...counters.snapshot(), ...prefixed(set.engineCounters.snapshot()) };
  const diff: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (typeof v === "number" && v - (before[k] ?? 0)) diff[k] = v - (before[k] ?? 0);
  return { file, records, conns: diff["conn_opened"] ?? 0, cpuUs: cpu.user + cpu.system, counters: diff };
}

function prefixed(s: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [`engine.${k}`, v]));
}

const LOOPS = Number(process.env.LOOPS ?? 5);
const WARMUP = Number(process.env.WARMUP ?? 1);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const REQUESTS = Number(process.env.REQUESTS ?? 4000);
const PER_CONN = Number(process.env.PER_CONN ?? 10);
const RATE = Number(process.env.RATE ?? 5000);
const ONLY = process.env.ONLY ?? "";
const shapes: [string, Uint8Array[]][] = [];
if (!ONLY || "per connection".includes(ONLY)) shapes.push([`${PER_CONN} per connection`, probeMessages(await capture(REQUESTS, PER_CONN), REQUESTS)]);
if (!ONLY || "one connection".includes(ONLY)) shapes.push(["one connection", probeMessages(await capture(REQUESTS, REQUESTS), REQUESTS)]);
for (const f of process.argv.slice(2)) shapes.push([path.basename(f), load(f)]);
const files = shapes.map(([name]) => name);
const data = new Map(shapes.map(([name, msgs]) => [name, Array.from({ length: WARMUP + LOOPS }, (_, k) => rekey(msgs, k))] as const));
const results: Result[] = [];
for (let r = 0; r < ROUNDS; r++) for (const f of files) results.push(runOnce(f, data.get(f)!, WARMUP));
console.log(`| shape | records | connections | records/connection | CPU µs/record | CPU µs/connection opened |`);
console.log(`|---|---:|---:|---:|---:|---:|`);
for (const r of results) {
  console.log(`| ${r.file} | ${r.records} | ${r.conns} | ${(r.records / Math.max(1, r.conns)).toFixed(1)} | ${(r.cpuUs / r.records).toFixed(2)} | ${r.conns ? (r.cpuUs / r.conns).toFixed(1) : "-"} |`);
}
if (process.env.VERBOSE) for (const r of results.slice(-files.length)) console.log(r.file, JSON.stringify(r.counters));
