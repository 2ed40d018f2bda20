// Aggregator throughput: records/s and CPU per record.
//   1. core: ingest + window close + line protocol (no I/O)
//   2. pipeline into a real influxd 1.x: protobuf decode + core + InfluxWriter (v1 /write) + acks
//   3. the real service process: RecordBatches pre-loaded into JetStream, `wirescope aggregator`
//      consumes them into influxd (NATS, decode, windows, writes, acks: everything)
// Run: npm run bench -- aggregator   (or: node --expose-gc services/aggregator/dist/aggregator.bench.js)
import os from "node:os";
import fs from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { connect } from "nats";
import { RecordBatchSchema, startInfluxd, startNatsServer, freePort, createClient, AggregatorService, type Record as WRecord } from "@wirescope/common";
import { Aggregator } from "./core/aggregator.js";
import { windowLines, SpanClock } from "./core/lines.js";
import { makeRecord } from "./core/testing.js";
import { Pipeline } from "./pipeline.js";
import { decodeRecordBatch } from "./core/decode.js";
import { InfluxWriter } from "./influx/writer.js";

const N = Number(process.env.BENCH_RECORDS ?? 300_000);
const PER_BATCH = 500;
const WINDOW = 10_000;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** N records over 60 s of event time ending now: 20 services, HTTP/gRPC/MySQL, ids in paths, 5% errors. */
function makeRecords(n: number): WRecord[] {
  const r = rng(1);
  const start = Math.floor(Date.now() / WINDOW) * WINDOW - 90_000;
  const out: WRecord[] = [];
  for (let i = 0; i < n; i++) {
    const svc = i % 20;
    const kind = i % 10;
    const t = start + (i / n) * 60_000;
    const d = Math.exp(r() * 6);
    const err = r() < 0.05;
    const server = { service: `svc-${svc}`, address: `10.0.${svc}.1`, port: 8080, pid: 100 + svc };
    const client = { service: `svc-${(svc + 1) % 20}`, address: `10.0.${(svc + 1) % 20}.1`, port: 30000 + (i % 20000), pid: 100 + ((svc + 1) % 20) };
    if (kind < 7) out.push(makeRecord({ startMs: t, durationMs: d, resource: `/api/v1/items/${i % 5000}/detail`, operation: i % 3 ? "GET" : "POST", status: err ? 503 : 200, server, client, connKey: BigInt(i), tid: svc }));
    else if (kind < 9) out.push(makeRecord({ startMs: t, durationMs: d, protocol: "grpc", operation: "Get", resource: `/shop.Items/Get${i % 4}`, status: err ? 14 : 0, error: err, server, client, connKey: BigInt(i), tid: svc }));
    else out.push(makeRecord({ startMs: t, durationMs: d, protocol: "mysql", operation: "SELECT", resource: `SELECT * FROM t${i % 8} WHERE id = ${i}`, server, client, connKey: BigInt(i), tid: svc }));
  }
  return out;
}

function encode(records: WRecord[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < records.length; i += PER_BATCH) out.push(toBinary(RecordBatchSchema, create(RecordBatchSchema, { node: "bench", parserId: "bench", records: records.slice(i, i + PER_BATCH), batchSeq: BigInt(i) })));
  return out;
}

function cpuMs(c: NodeJS.CpuUsage): number {
  return (c.user + c.system) / 1000;
}

interface Row {
  stage: string;
  records: number;
  seconds: number;
  cpuSeconds: number;
  lines: number;
}
const results: Row[] = [];

function report(r: Row) {
  results.push(r);
  const rps = r.records / r.seconds;
  console.log(`${r.stage.padEnd(44)} ${String(r.records).padStart(8)} records  ${(rps / 1000).toFixed(1).padStart(7)} k rec/s  ${((r.cpuSeconds * 1e6) / r.records).toFixed(2).padStart(7)} µs CPU/record  ${String(r.lines).padStart(8)} lines`);
}

async function benchCore(records: WRecord[]) {
  for (const spans of [false, true]) {
    global.gc?.();
    const agg = new Aggregator({ spans, spanSampleRate: 0.1 });
    const clock = new SpanClock();
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    let lines = 0;
    for (let i = 0; i < records.length; i += PER_BATCH) {
      agg.ingest(records.slice(i, i + PER_BATCH), Date.now());
      for (const w of agg.closeDue(Date.now())) lines += windowLines(w, clock).length;
    }
    for (const w of agg.closeDue(Date.now() + 3_600_000, true)) lines += windowLines(w, clock).length;
    report({ stage: `core (ingest+close+lines), spans ${spans ? "on" : "off"}`, records: records.length, seconds: (performance.now() - t0) / 1000, cpuSeconds: cpuMs(process.cpuUsage(c0)) / 1000, lines });
  }
}

async function benchDecode(batches: Uint8Array[]) {
  for (const [stage, decode] of [
    ["decode only: protobuf-es fromBinary", (b: Uint8Array) => fromBinary(RecordBatchSchema, b).records.length],
    ["decode only: lean decoder (core/decode.ts)", (b: Uint8Array) => decodeRecordBatch(b).length],
  ] as const) {
    global.gc?.();
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    let n = 0;
    for (const b of batches) n += decode(b);
    report({ stage, records: n, seconds: (performance.now() - t0) / 1000, cpuSeconds: cpuMs(process.cpuUsage(c0)) / 1000, lines: 0 });
  }
}

async function benchPipeline(batches: Uint8Array[], influxUrl: string) {
  const writer = await InfluxWriter.connect({ url: influxUrl, database: "bench" });
  const agg = new Aggregator({ spanSampleRate: 0.1 });
  const pipeline = new Pipeline(agg, { write: (l) => writer.write(l), saveWatermark: async () => undefined }, -Infinity);
  global.gc?.();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let n = 0;
  let seq = 0;
  for (const b of batches) {
    const recs = decodeRecordBatch(b);
    n += recs.length;
    pipeline.onBatch(recs, { seq: ++seq, redelivered: false, ack: () => undefined }, Date.now());
    pipeline.tick(Date.now());
    if (seq % 20 === 0) await new Promise((r) => setImmediate(r));
  }
  pipeline.tick(Date.now() + 3_600_000, true);
  await pipeline.settled();
  report({ stage: "decode + pipeline + InfluxDB 1.x (in process)", records: n, seconds: (performance.now() - t0) / 1000, cpuSeconds: cpuMs(process.cpuUsage(c0)) / 1000, lines: writer.stats.linesWritten });
  if (pipeline.counters.batchesAcked !== batches.length) throw new Error(`acked ${pipeline.counters.batchesAcked} of ${batches.length}`);
  writer.close();
}

async function benchService(batches: Uint8Array[], records: number, influxUrl: string, dir: string, extra: string[], label: string) {
  fs.mkdirSync(dir, { recursive: true });
  const nats = await startNatsServer({ port: 0, jetstream: true, storeDir: path.join(dir, "js"), logFile: path.join(dir, "nats.log") });
  try {
    const nc = await connect({ servers: nats.url });
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: "WIRESCOPE_RECORDS", subjects: ["wirescope.records.>"] });
    const js = nc.jetstream();
    const pubs: Promise<unknown>[] = [];
    for (const b of batches) {
      pubs.push(js.publish("wirescope.records.0", b));
      if (pubs.length >= 256) await Promise.all(pubs.splice(0));
    }
    await Promise.all(pubs);
    const port = await freePort();
    const logFd = fs.openSync(path.join(dir, "aggregator.log"), "a");
    const child = spawn(process.execPath, [path.join(root, "bin/wirescope.js"), "aggregator", "--nats-url", nats.url, "--influx-url", influxUrl, "--influx-db", "bench_service", "--grpc-port", String(port), "--log-format", "json", "--grace-ms", "1000", ...extra], { stdio: ["ignore", logFd, logFd] });
    const client = createClient(AggregatorService, `127.0.0.1:${port}`);
    const counters = async () => ((await client.status({}, { timeoutMs: 2000 })) as { counters: Record<string, number> }).counters;
    let t0 = 0;
    let cpu0 = 0;
    const ticks = 100; // USER_HZ on Linux
    const procCpu = () => {
      const f = fs.readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      return (Number(f[11]) + Number(f[12])) / ticks;
    };
    const deadline = Date.now() + 300_000;
    for (;;) {
      if (Date.now() > deadline) throw new Error("service bench timed out");
      await new Promise((r) => setTimeout(r, 50));
      let c: Record<string, number>;
      try {
        c = await counters();
      } catch {
        continue;
      }
      if (!t0) {
        t0 = performance.now();
        cpu0 = procCpu();
      }
      if ((c.records_in ?? 0) >= records && c.open_windows === 0 && c.held_batches === 0 && c.pending_lines === 0) {
        const seconds = (performance.now() - t0) / 1000;
        report({ stage: `service: JetStream → InfluxDB 1.x, ${label}`, records, seconds, cpuSeconds: procCpu() - cpu0, lines: c.points_out ?? 0 });
        break;
      }
    }
    client.close();
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    await nc.close();
  } finally {
    await nats.stop();
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wirescope-agg-bench-"));
const influx = await startInfluxd({ dir: path.join(dir, "influx"), logFile: path.join(dir, "influxd.log") });
try {
  console.log(`aggregator benchmark: ${N} records, ${os.cpus().length} cores (${os.cpus()[0]?.model}), node ${process.version}`);
  const records = makeRecords(N);
  const batches = encode(records);
  await benchCore(records);
  await benchDecode(batches);
  await benchPipeline(batches, influx.url);
  // The service bench needs fresh timestamps (windows close by event time / idle wall clock).
  await benchService(encode(makeRecords(N)), N, influx.url, path.join(dir, "s1"), [], "spans 10%");
  await benchService(encode(makeRecords(N)), N, influx.url, path.join(dir, "s2"), ["--no-spans"], "no spans");
} finally {
  await influx.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
