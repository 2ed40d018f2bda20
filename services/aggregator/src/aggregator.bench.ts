// Aggregator throughput: records/s and CPU per record.
//   1. core: ingest + window close + line protocol (no I/O)
//   2. pipeline into a real influxd 1.x: protobuf decode + core + InfluxWriter (v1 /write) + acks
//   3. the real service process: RecordBatches pre-loaded into JetStream, `wirescope aggregator`
//      consumes them into influxd (NATS, decode, windows, writes, acks: everything)
//   4. the real service process on the shape of real traffic, live: 16 keep-alive connections,
//      both ends traced (a client and a server record per request), 10,000 records/s published
//      as they happen, every 20 ms a batch per partition (as the parser flushes): small batches
//      over 32 partitions, or one partition per service (the stream a single service makes)
//   6. a fleet of 1, 2 and 3 service processes (--durable per fleet): the records published on
//      their services' partitions as the parsers do, read by every instance, counted by the owner;
//      records/s until all are in InfluxDB, CPU per record summed over the instances
// Run: npm run bench -- aggregator   (or: node --expose-gc services/aggregator/dist/aggregator.bench.js)
// Env: BENCH_RECORDS (stages 1-3), BENCH_LIVE_SECONDS (stage 4, default 15; 0 skips it),
//      BENCH_ONLY=live (stage 4 only), BENCH_BASELINE=<checkout> (stage 4 also runs that checkout's
//      `bin/wirescope.js aggregator`, alternating with this one: before/after in one run),
//      BENCH_ONLY=fleet (stage 6 only), BENCH_FLEET (stage 6 sizes, default 1,2,3),
//      BENCH_LIVE_ROUNDS (alternations per shape, default 1), BENCH_LIVE_RATE (stage 4 requests/s, default 5000),
//      BENCH_CPU_PROF=<dir> (stage 4's service processes write V8 CPU profiles there),
//      BENCH_ONLY=shape: stage 5 only — decode + core + lines in this process on stage 4's traffic
//      (BENCH_LIVE_RATE, BENCH_LIVE_SECONDS, 32 partitions), one keep-alive shape and
//      BENCH_SHAPE_PER_CONN requests per connection (default 10); with BENCH_BASELINE the
//      baseline's built core too, alternating BENCH_LIVE_ROUNDS times (before/after in one process)
import os from "node:os";
import fs from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { connect, type NatsConnection } from "nats";
import { RecordBatchSchema, RecordSchema, EndpointSchema, ProcessInfoSchema, AttributeValueSchema, Role, recordPartitionOf, startInfluxd, startNatsServer, freePort, createClient, AggregatorService, type Record as WRecord } from "@wirescope/common";
import { Aggregator } from "./core/aggregator.js";
import { windowLines, SpanClock } from "./core/lines.js";
import { makeRecord } from "./core/testing.js";
import { Pipeline } from "./pipeline.js";
import { decodeRecordBatch } from "./core/decode.js";
import { RecordBatchSlots } from "./core/record-slot.js";
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
  /** Counters worth a look (drops that moved, spans linked). */
  note?: string;
}
const results: Row[] = [];

function report(r: Row) {
  results.push(r);
  const rps = r.records / r.seconds;
  console.log(`${r.stage.padEnd(44)} ${String(r.records).padStart(8)} records  ${(rps / 1000).toFixed(1).padStart(7)} k rec/s  ${((r.cpuSeconds * 1e6) / r.records).toFixed(2).padStart(7)} µs CPU/record  ${String(r.lines).padStart(8)} lines${r.note ? `  ${r.note}` : ""}`);
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
  const slots = new RecordBatchSlots();
  for (const [stage, decode] of [
    ["decode only: protobuf-es fromBinary", (b: Uint8Array) => fromBinary(RecordBatchSchema, b).records.length],
    ["decode only: lean decoder (core/decode.ts)", (b: Uint8Array) => decodeRecordBatch(b, slots).length],
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
  const slots = new RecordBatchSlots();
  for (const b of batches) {
    const recs = decodeRecordBatch(b, slots);
    n += recs.length;
    pipeline.onBatch(recs, { seq: ++seq, redelivered: false, partition: 0, ack: () => undefined }, Date.now());
    pipeline.tick(Date.now());
    if (seq % 20 === 0) await new Promise((r) => setImmediate(r));
  }
  pipeline.tick(Date.now() + 3_600_000, true);
  await pipeline.settled();
  report({ stage: "decode + pipeline + InfluxDB 1.x (in process)", records: n, seconds: (performance.now() - t0) / 1000, cpuSeconds: cpuMs(process.cpuUsage(c0)) / 1000, lines: writer.stats.linesWritten });
  if (pipeline.counters.batchesAcked !== batches.length) throw new Error(`acked ${pipeline.counters.batchesAcked} of ${batches.length}`);
  writer.close();
}

/** A nats-server with JetStream and the records stream, for the service stages. */
async function withStream<T>(dir: string, run: (nc: NatsConnection, natsUrl: string) => Promise<T>): Promise<T> {
  fs.mkdirSync(dir, { recursive: true });
  const nats = await startNatsServer({ port: 0, jetstream: true, storeDir: path.join(dir, "js"), logFile: path.join(dir, "nats.log") });
  try {
    const nc = await connect({ servers: nats.url });
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: "WIRESCOPE_RECORDS", subjects: ["wirescope.records.>"] });
    try {
      return await run(nc, nats.url);
    } finally {
      await nc.close();
    }
  } finally {
    await nats.stop();
  }
}

/** A `wirescope aggregator` process of `checkout` and its status counters. */
async function startAggregator(checkout: string, natsUrl: string, influxUrl: string, db: string, dir: string, extra: string[], nodeArgs: string[] = [], logName = "aggregator.log") {
  const port = await freePort();
  const logFd = fs.openSync(path.join(dir, logName), "a");
  const child = spawn(process.execPath, [...nodeArgs, path.join(checkout, "bin/wirescope.js"), "aggregator", "--nats-url", natsUrl, "--influx-url", influxUrl, "--influx-db", db, "--grpc-port", String(port), "--log-format", "json", "--grace-ms", "1000", ...extra], { stdio: ["ignore", logFd, logFd] });
  const client = createClient(AggregatorService, `127.0.0.1:${port}`);
  return {
    /** Its counters, or undefined while it does not answer. */
    counters: async () => ((await client.status({}, { timeoutMs: 2000 }).catch(() => undefined)) as { counters: Record<string, number> } | undefined)?.counters,
    /** CPU seconds (user + system) so far, from /proc. */
    cpuSeconds: () => {
      const f = fs.readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ
    },
    /** Resolves once every record is in, every window written and every batch acked. */
    async drained(records: number, timeoutMs: number): Promise<Record<string, number>> {
      let c: Record<string, number> = {};
      for (const deadline = Date.now() + timeoutMs; ; ) {
        if (Date.now() > deadline) throw new Error(`service bench timed out: ${JSON.stringify(c)}`);
        await new Promise((r) => setTimeout(r, 50));
        c = (await this.counters()) ?? c;
        if ((c.records_in ?? 0) >= records && c.open_windows === 0 && c.held_batches === 0 && c.pending_lines === 0) return c;
      }
    },
    async stop() {
      client.close();
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
  };
}

async function benchService(batches: Uint8Array[], records: number, influxUrl: string, dir: string, extra: string[], label: string) {
  await withStream(dir, async (nc, natsUrl) => {
    const js = nc.jetstream();
    const pubs: Promise<unknown>[] = [];
    for (const b of batches) {
      pubs.push(js.publish("wirescope.records.0", b));
      if (pubs.length >= 256) await Promise.all(pubs.splice(0));
    }
    await Promise.all(pubs);
    const svc = await startAggregator(root, natsUrl, influxUrl, "bench_service", dir, extra);
    while (!(await svc.counters())) await new Promise((r) => setTimeout(r, 50));
    const t0 = performance.now();
    const cpu0 = svc.cpuSeconds();
    const c = await svc.drained(records, 300_000);
    report({ stage: `service: JetStream → InfluxDB 1.x, ${label}`, records, seconds: (performance.now() - t0) / 1000, cpuSeconds: svc.cpuSeconds() - cpu0, lines: c.points_out ?? 0 });
    await svc.stop();
  });
}

interface Timed {
  /** Publish time, ms since the epoch. */
  at: number;
  subject: string;
  bytes: Uint8Array;
}

/**
 * The records of `h2load --h1 -c 16 --rps` against one node:http server with both ends traced,
 * as the parser publishes them: a request every 1/rate s round-robin over 16 keep-alive
 * connections, a client record (h2load's socket) and a server record (node's) per request, with
 * the attributes the HTTP/1 decoder writes. Every 20 ms the records that ended are published,
 * one RecordBatch per partition: `partitions` 32 spreads connections and ends over 32 partitions
 * (a few records per batch), 1 puts them in one (one service's partition, ~200 per batch).
 */
function keepAliveTraffic(t0: number, seconds: number, requestsPerSecond: number, partitions: number, perConnection = 0): { batches: Timed[]; records: number } {
  const r = rng(7);
  const str = (v: string) => create(AttributeValueSchema, { value: { case: "stringValue", value: v } });
  const int = (v: number) => create(AttributeValueSchema, { value: { case: "intValue", value: BigInt(v) } });
  const ep = (port: number, service: string, pid?: number, name?: string) =>
    create(EndpointSchema, { address: "127.0.0.1", port, service, process: pid ? create(ProcessInfoSchema, { pid, name }) : undefined });
  const flushMs = 20;
  const pending: { end: number; p: number; rec: WRecord }[] = [];
  const n = Math.floor(seconds * requestsPerSecond);
  for (let i = 0; i < n; i++) {
    // 16 keep-alive connections, or a new one every `perConnection` requests (ports in turn).
    const conn = perConnection ? Math.floor(i / perConnection) : i % 16;
    const startMs = t0 + (i * 1000) / requestsPerSecond;
    const durMs = 0.15 + r() * 0.5;
    const clientPort = perConnection ? 1024 + (conn % 60000) : 41000 + conn;
    for (const role of [Role.CLIENT, Role.SERVER]) {
      const client = role === Role.CLIENT;
      const s = client ? startMs : startMs + 0.02;
      const d = client ? durMs : durMs - 0.04;
      const rec = create(RecordSchema, {
        protocol: "http",
        startNs: BigInt(Math.round(s * 1e3)) * 1000n + BigInt(Math.floor(r() * 1000)),
        durationNs: BigInt(Math.round(d * 1e6)),
        operation: "GET",
        resource: "/x",
        status: 200n,
        responseBytes: 512n,
        attributes: { "http.request.method": str("GET"), "url.path": str("/x"), "server.address": str("127.0.0.1:18090"), "network.protocol.version": str("1.1"), "http.response.status_code": int(200) },
        client: ep(clientPort, "h2load", client ? 4001 : undefined, "h2load"),
        server: ep(18090, "node:18090", client ? undefined : 4002, "node"),
        connKey: BigInt(conn * 2 + (client ? 1 : 2)),
        role,
        tid: client ? 4001 : 4002,
        node: "bench",
      });
      pending.push({ end: s + d, p: (conn * 2 + (client ? 0 : 1)) % partitions, rec });
    }
  }
  pending.sort((a, b) => a.end - b.end);
  const batches: Timed[] = [];
  let seq = 0n;
  for (let i = 0; i < pending.length; ) {
    const at = Math.ceil((pending[i]!.end - t0) / flushMs) * flushMs + t0;
    const by = new Map<number, WRecord[]>();
    for (; i < pending.length && pending[i]!.end <= at; i++) {
      const x = pending[i]!;
      let l = by.get(x.p);
      if (!l) by.set(x.p, (l = []));
      l.push(x.rec);
    }
    for (const [p, records] of by) batches.push({ at, subject: `wirescope.records.${p}`, bytes: toBinary(RecordBatchSchema, create(RecordBatchSchema, { node: "bench", parserId: "bench", records, partition: p, batchSeq: ++seq })) });
  }
  return { batches, records: pending.length };
}

/**
 * Stage 4: the service process consumes live traffic (see keepAliveTraffic) from JetStream into
 * influxd; CPU of that process from the first publish until every window is written and acked.
 */
async function benchLive(checkout: string, label: string, partitions: number, seconds: number, influxUrl: string, dir: string): Promise<Row> {
  return withStream(dir, async (nc, natsUrl) => {
    const prof = process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`, `--cpu-prof-name=${label.replace(/\W+/g, "-")}-${partitions}.cpuprofile`] : [];
    const svc = await startAggregator(checkout, natsUrl, influxUrl, "bench_live", dir, [], prof);
    for (const deadline = Date.now() + 60_000; !("records_in" in ((await svc.counters()) ?? {})); ) {
      if (Date.now() > deadline) throw new Error("aggregator did not start");
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1000));
    // Event time is now: windows close as they do in production.
    const t0 = Date.now() + 500;
    const { batches, records } = keepAliveTraffic(t0, seconds, Number(process.env.BENCH_LIVE_RATE ?? 5000), partitions);
    while (Date.now() < t0) await new Promise((r) => setTimeout(r, 5));
    const cpu0 = svc.cpuSeconds();
    const w0 = performance.now();
    for (let i = 0; i < batches.length; ) {
      const now = Date.now();
      for (; i < batches.length && batches[i]!.at <= now; i++) nc.publish(batches[i]!.subject, batches[i]!.bytes);
      await new Promise((r) => setTimeout(r, 5));
    }
    await nc.flush();
    const c = await svc.drained(records, 120_000);
    const drops = Object.entries(c).filter(([k, v]) => k.startsWith("drops_") && v);
    const note = `spans linked ${(c.spans_kept ?? 0) + (c.spans_dropped ?? 0)}; ${drops.length ? drops.map(([k, v]) => `${k} ${v}`).join(", ") : "no drop counter moved"}`;
    const row = { stage: `live keep-alive, ${label}, ${(records / batches.length).toFixed(1)} rec/batch`, records, seconds: (performance.now() - w0) / 1000, cpuSeconds: svc.cpuSeconds() - cpu0, lines: c.points_out ?? 0, note };
    report(row);
    await svc.stop();
    return row;
  });
}

/** The core modules a checkout built (this one, or BENCH_BASELINE's), for stage 5. */
interface CoreModule {
  Aggregator: typeof Aggregator;
  SpanClock: typeof SpanClock;
  windowLines: typeof windowLines;
  decodeRecordBatch(b: Uint8Array, into?: RecordBatchSlots): RecordBatchSlots | readonly WRecord[];
  RecordBatchSlots?: typeof RecordBatchSlots;
}

/**
 * Stage 5: decode + ingest + close + line protocol in this process, on stage 4's traffic (event
 * time two minutes ago, windows closed as batches arrive): the aggregator's own work per record
 * without NATS and InfluxDB, and with the baseline's core alternating in the same process.
 */
async function benchShape(): Promise<void> {
  const rate = Number(process.env.BENCH_LIVE_RATE ?? 20000);
  const seconds = Number(process.env.BENCH_LIVE_SECONDS ?? 10);
  const rounds = Number(process.env.BENCH_LIVE_ROUNDS ?? 2);
  const cores: [string, CoreModule][] = [["this checkout", (await import("./core/index.js")) as unknown as CoreModule]];
  if (process.env.BENCH_BASELINE) cores.unshift(["before", (await import(path.resolve(process.env.BENCH_BASELINE, "services/aggregator/dist/core/index.js"))) as CoreModule]);
  const t0 = Math.floor(Date.now() / WINDOW) * WINDOW - 120_000;
  for (const perConn of [0, Number(process.env.BENCH_SHAPE_PER_CONN ?? 10)]) {
    const { batches, records } = keepAliveTraffic(t0, seconds, rate, 32, perConn);
    const shape = perConn ? `${perConn} requests per connection` : "16 keep-alive connections";
    for (let round = 0; round < rounds; round++)
      for (const [label, m] of cores) {
        const agg = new m.Aggregator({ spanSampleRate: 0.1 });
        const clock = new m.SpanClock();
        const slots = m.RecordBatchSlots ? new m.RecordBatchSlots() : undefined;
        global.gc?.();
        const w0 = performance.now();
        const c0 = process.cpuUsage();
        let lines = 0;
        for (const b of batches) {
          agg.ingest(m.decodeRecordBatch(b.bytes, slots), b.at + 50);
          for (const w of agg.closeDue(b.at + 50)) lines += m.windowLines(w, clock).length;
        }
        for (const w of agg.closeDue(t0 + 3_600_000, true)) lines += m.windowLines(w, clock).length;
        const cpu = cpuMs(process.cpuUsage(c0)) / 1000;
        report({ stage: `shape, ${shape}, ${label}`, records, seconds: (performance.now() - w0) / 1000, cpuSeconds: cpu, lines, note: `link visits ${agg.counters.linkVisits}` });
      }
  }
}

/**
 * `size` service processes sharing the records partitions: every record on its service's
 * partition (recordPartitionOf, as the parsers publish), batches of at most PER_BATCH per
 * partition, published once the instances agree on who owns what.
 */
async function benchFleet(size: number, records: WRecord[], influxUrl: string, dir: string) {
  await withStream(dir, async (nc, natsUrl) => {
    const fleet = [];
    for (let i = 0; i < size; i++) fleet.push(await startAggregator(root, natsUrl, influxUrl, `bench_fleet${size}`, dir, ["--durable", `fleet${size}`], [], `aggregator-${i}.log`));
    // Agreed: every instance answers and the partitions owned add up to all of them, once each.
    for (let ok = false; !ok; await new Promise((r) => setTimeout(r, 100))) {
      const cs = await Promise.all(fleet.map((a) => a.counters()));
      ok = cs.every((c) => c?.members === size && c.partitions_owned! > 0) && cs.reduce((n, c) => n + (c?.partitions_owned ?? 0), 0) === 64;
    }
    // In event-time order, as the parsers flush: per slice of 1,000 records (0.6 s of event time), a batch per partition.
    const batches: { subject: string; bytes: Uint8Array }[] = [];
    for (let i = 0; i < records.length; i += 1000) {
      const byPartition = new Map<number, WRecord[]>();
      for (const r of records.slice(i, i + 1000)) {
        const p = recordPartitionOf(r.role === Role.CLIENT, r.client?.service ?? "", r.server?.service ?? "", 64);
        let l = byPartition.get(p);
        if (!l) byPartition.set(p, (l = []));
        l.push(r);
      }
      for (const [p, recs] of byPartition) for (const b of encode(recs)) batches.push({ subject: `wirescope.records.${p}`, bytes: b });
    }
    const t0 = performance.now();
    const cpu0 = fleet.map((a) => a.cpuSeconds());
    const js = nc.jetstream();
    const pubs: Promise<unknown>[] = [];
    for (const b of batches) {
      pubs.push(js.publish(b.subject, b.bytes));
      if (pubs.length >= 256) await Promise.all(pubs.splice(0));
    }
    await Promise.all(pubs);
    let cs: Record<string, number>[] = [];
    for (const deadline = Date.now() + 300_000; ; await new Promise((r) => setTimeout(r, 50))) {
      if (Date.now() > deadline) throw new Error(`fleet bench timed out: ${JSON.stringify(cs)}`);
      cs = (await Promise.all(fleet.map((a) => a.counters()))).map((c) => c ?? {});
      const sum = (k: string) => cs.reduce((n, c) => n + (c[k] ?? 0), 0);
      if (sum("records_in") >= records.length && cs.every((c) => c.open_windows === 0 && c.held_batches === 0 && c.pending_lines === 0)) break;
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = fleet.reduce((n, a, i) => n + a.cpuSeconds() - cpu0[i]!, 0);
    const per = cs.map((c) => c.records_in ?? 0).join("/");
    const drops = Object.keys(cs[0] ?? {})
      .filter((k) => k.startsWith("drops_"))
      .map((k) => [k, cs.reduce((n, c) => n + (c[k] ?? 0), 0)] as const)
      .filter(([, v]) => v > 0);
    report({ stage: `fleet of ${size}: JetStream → InfluxDB 1.x, spans 10%`, records: records.length, seconds, cpuSeconds: cpu, lines: cs.reduce((n, c) => n + (c.points_out ?? 0), 0), note: `records per instance ${per}; ${drops.length ? drops.map(([k, v]) => `${k} ${v}`).join(", ") : "no drop counter moved"}` });
    for (const a of fleet) await a.stop();
  });
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wirescope-agg-bench-"));
const influx = await startInfluxd({ dir: path.join(dir, "influx"), logFile: path.join(dir, "influxd.log") });
try {
  console.log(`aggregator benchmark: ${N} records, ${os.cpus().length} cores (${os.cpus()[0]?.model}), node ${process.version}`);
  if (process.env.BENCH_ONLY === "fleet" || !process.env.BENCH_ONLY) {
    const sizes = (process.env.BENCH_FLEET ?? "1,2,3").split(",").map(Number);
    // Fresh timestamps per run: windows close by event time and the idle wall clock.
    for (const size of sizes) await benchFleet(size, makeRecords(N), influx.url, path.join(dir, `fleet${size}`));
  }
  if (process.env.BENCH_ONLY === "shape") await benchShape();
  else if (process.env.BENCH_ONLY !== "live" && process.env.BENCH_ONLY !== "fleet") {
    const records = makeRecords(N);
    const batches = encode(records);
    await benchCore(records);
    await benchDecode(batches);
    await benchPipeline(batches, influx.url);
    // The service bench needs fresh timestamps (windows close by event time / idle wall clock).
    await benchService(encode(makeRecords(N)), N, influx.url, path.join(dir, "s1"), [], "spans 10%");
    await benchService(encode(makeRecords(N)), N, influx.url, path.join(dir, "s2"), ["--no-spans"], "no spans");
  }
  const liveSeconds = Number(process.env.BENCH_LIVE_SECONDS ?? 15);
  if (liveSeconds > 0 && process.env.BENCH_ONLY !== "shape" && process.env.BENCH_ONLY !== "fleet") {
    const baseline = process.env.BENCH_BASELINE;
    const runs: [string, string][] = baseline ? [["before", path.resolve(baseline)], ["after", root]] : [["this checkout", root]];
    const rounds = Number(process.env.BENCH_LIVE_ROUNDS ?? 1);
    let k = 0;
    for (const partitions of [32, 1])
      for (let round = 0; round < rounds; round++) for (const [label, checkout] of runs) await benchLive(checkout, label, partitions, liveSeconds, influx.url, path.join(dir, `live${k++}`));
  }
} finally {
  await influx.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
