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
// Run: npm run bench -- aggregator   (or: node --expose-gc test/dist/aggregator.bench.js)
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
//      BENCH_ONLY=decode: the decode rows of stage 2 only (protobuf-es and the lean decoder, and
//      the lean decoder on keep-alive batches with each record's endpoints or each connection's once)
//      BENCH_ONLY=same BENCH_BASELINE=<checkout>: stage 7 only — the lines both cores write on the
//      same batches (keep-alive, 10 requests per connection, a mixed workload with trace headers,
//      thread links, names learned late, several nodes), compared by sha256: exit 1 when they differ
//      (span budget off; with this checkout's default span budget, every line but the spans' too)
import os from "node:os";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager, jetstream } from "@nats-io/jetstream";
import { RecordBatchSchema, RecordSchema, EndpointSchema, ProcessInfoSchema, AttributeValueSchema, TraceContextSchema, Role, AggregatorService, type Record as WRecord } from "@wirescope/wire";
import { recordPartitionOf, freePort, createClient } from "@wirescope/runtime";
import { startInfluxd, startNatsServer } from "@wirescope/cli/local-stack/index";
import { Aggregator } from "@wirescope/aggregator/core/aggregator";
import { windowLines, SpanClock } from "@wirescope/aggregator/core/lines";
import { makeRecord } from "@wirescope/aggregator/test-support/records";
import { Pipeline } from "@wirescope/aggregator/pipeline";
import { decodeRecordBatch } from "@wirescope/aggregator/core/decode";
import { RecordBatchSlots } from "@wirescope/aggregator/core/record-slot";
import { InfluxWriter } from "@wirescope/aggregator/influx/writer";

const N = Number(process.env.BENCH_RECORDS ?? 300_000);
const PER_BATCH = 500;
const WINDOW = 10_000;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

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

/**
 * The records on 16 keep-alive connections, both ends traced (32 connection ends), in batches of
 * PER_BATCH: each record carrying its connection's fields, or (`entries`) each batch holding them
 * once per connection (RecordBatch.connections) as the parser writes them.
 */
function keepAliveBatches(records: WRecord[], entries: boolean): Uint8Array[] {
  const host = ["client", "server", "connKey", "role", "node"] as const;
  const out: Uint8Array[] = [];
  for (let i = 0; i < records.length; i += PER_BATCH) {
    const batch = create(RecordBatchSchema, { node: "bench", parserId: "bench", batchSeq: BigInt(i) });
    const index = new Map<number, number>();
    records.slice(i, i + PER_BATCH).forEach((src, k) => {
      const end = (i + k) % 32;
      const r = create(RecordSchema, { ...src, attributes: { ...src.attributes } });
      r.connKey = BigInt(1000 + end);
      r.role = end % 2 ? Role.CLIENT : Role.SERVER;
      r.client = create(EndpointSchema, { address: "127.0.0.1", port: 40000 + (end >> 1), service: "h2load", process: create(ProcessInfoSchema, { pid: 200, name: "h2load" }) });
      r.server = create(EndpointSchema, { address: "127.0.0.1", port: 18090, service: "node:18090", process: create(ProcessInfoSchema, { pid: 100, name: "node" }) });
      if (entries) {
        let ref = index.get(end);
        if (ref === undefined) {
          index.set(end, (ref = batch.connections.length + 1));
          batch.connections.push(create(RecordSchema, { client: r.client, server: r.server, connKey: r.connKey, role: r.role, node: r.node }));
        }
        for (const f of host) (r as unknown as { [k: string]: unknown })[f] = create(RecordSchema)[f];
        r.connection = ref;
      }
      batch.records.push(r);
    });
    out.push(toBinary(RecordBatchSchema, batch));
  }
  return out;
}

async function benchDecode(batches: Uint8Array[], records: WRecord[]) {
  const slots = new RecordBatchSlots();
  const carried = keepAliveBatches(records, false);
  const named = keepAliveBatches(records, true);
  const bytesPerRecord = (bs: Uint8Array[]) => `${(bs.reduce((n, b) => n + b.length, 0) / records.length).toFixed(0)} B/record`;
  const lean = (b: Uint8Array) => decodeRecordBatch(b, slots).length;
  for (const [stage, decode, input] of [
    ["decode only: protobuf-es fromBinary", (b: Uint8Array) => fromBinary(RecordBatchSchema, b).records.length, batches],
    ["decode only: lean decoder (core/decode.ts)", lean, batches],
    // the same records on 32 keep-alive connection ends, side by side: endpoints per record, or once per batch
    [`keep-alive, ends in every record (${bytesPerRecord(carried)})`, lean, carried],
    [`keep-alive, ends once per batch (${bytesPerRecord(named)})`, lean, named],
  ] as const) {
    global.gc?.();
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    let n = 0;
    for (const b of input) n += decode(b);
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
    const jsm = await jetstreamManager(nc);
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

/** CPU seconds (user + system) of process `pid` so far, from /proc. */
function procCpuSeconds(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ
}

/** A `wirescope aggregator` process of `checkout` and its status counters. */
async function startAggregator(checkout: string, natsUrl: string, influxUrl: string, db: string, dir: string, extra: string[], nodeArgs: string[] = [], logName = "aggregator.log") {
  const port = await freePort();
  const logFd = fs.openSync(path.join(dir, logName), "a");
  // Started as `wirescope up` starts it: with the checkout's own node flags (none before they existed).
  const own = ((await import(path.join(checkout, "services/aggregator/dist/options.js"))) as { AGGREGATOR_NODE_FLAGS?: readonly string[] }).AGGREGATOR_NODE_FLAGS ?? [];
  const child = spawn(process.execPath, [...own, ...nodeArgs, path.join(checkout, "bin/wirescope.js"), "aggregator", "--nats-url", natsUrl, "--influx-url", influxUrl, "--influx-db", db, "--grpc-port", String(port), "--log-format", "json", "--grace-ms", "1000", ...extra], { stdio: ["ignore", logFd, logFd] });
  const client = createClient(AggregatorService, `127.0.0.1:${port}`);
  return {
    /** Its counters, or undefined while it does not answer. */
    counters: async () => ((await client.status({}, { timeoutMs: 2000 }).catch(() => undefined)) as { counters: Record<string, number> } | undefined)?.counters,
    /** CPU seconds (user + system) so far, from /proc. */
    cpuSeconds: () => procCpuSeconds(child.pid!),
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
    const js = jetstream(nc);
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
    const influx0 = procCpuSeconds(influx.pid!);
    const w0 = performance.now();
    for (let i = 0; i < batches.length; ) {
      const now = Date.now();
      for (; i < batches.length && batches[i]!.at <= now; i++) nc.publish(batches[i]!.subject, batches[i]!.bytes);
      await new Promise((r) => setTimeout(r, 5));
    }
    await nc.flush();
    const c = await svc.drained(records, 120_000);
    const drops = Object.entries(c).filter(([k, v]) => k.startsWith("drops_") && v);
    // influxd's CPU for the same interval: what the lines written cost it to take in.
    const influxUs = ((procCpuSeconds(influx.pid!) - influx0) * 1e6) / records;
    const note = `influxd ${influxUs.toFixed(2)} µs CPU/record; spans linked ${(c.spans_kept ?? 0) + (c.spans_dropped ?? 0)}, kept ${c.spans_kept ?? 0}; ${drops.length ? drops.map(([k, v]) => `${k} ${v}`).join(", ") : "no drop counter moved"}`;
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
  const cores: [string, CoreModule][] = [["this checkout", (await import("@wirescope/aggregator/core/index")) as unknown as CoreModule]];
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
 * A mixed workload in event-time batches (20 ms, 8 partitions): web (node n1, namespace shop) serves
 * HTTP and calls api (n2) on the same thread, with W3C headers on some requests (some relayed
 * unchanged), api queries an untraced MySQL; a gRPC client named by its bare process name until the
 * same pid is seen listening; h2 streams sharing a connection; errors, incomplete requests, no
 * status, TLS, durations with ties.
 */
function mixedTraffic(t0: number, seconds: number, perSecond: number): Timed[] {
  const r = rng(11);
  const hex = (n: number) => Array.from({ length: n }, () => Math.floor(r() * 16).toString(16)).join("");
  const str = (v: string) => create(AttributeValueSchema, { value: { case: "stringValue", value: v } });
  const bool = (v: boolean) => create(AttributeValueSchema, { value: { case: "boolValue", value: v } });
  const ep = (address: string, port: number, o: { service?: string; pid?: number; name?: string; node?: string; namespace?: string } = {}) =>
    create(EndpointSchema, { address, port, service: o.service ?? "", node: o.node ?? "", process: o.pid || o.name ? create(ProcessInfoSchema, { pid: o.pid ?? 0, name: o.name ?? "", namespace: o.namespace ?? "" }) : undefined });
  const recs: { end: number; p: number; rec: WRecord }[] = [];
  const push = (rec: WRecord, end: number) => recs.push({ end, p: Number(rec.connKey % 8n), rec });
  const mk = (o: { protocol: string; s: number; d: number; op: string; res: string; status?: number; error?: boolean; incomplete?: boolean; role: Role; client: ReturnType<typeof ep>; server: ReturnType<typeof ep>; conn: number; tid: number; node: string; trace?: [string, string]; tls?: boolean }) =>
    create(RecordSchema, {
      protocol: o.protocol,
      startNs: BigInt(Math.round(o.s * 1e3)) * 1000n + BigInt(Math.floor(r() * 1000)),
      durationNs: BigInt(Math.round(o.d * 1e3)) * 1000n,
      operation: o.op,
      resource: o.res,
      status: o.status === undefined ? undefined : BigInt(o.status),
      error: o.error ?? false,
      incomplete: o.incomplete ?? false,
      responseBytes: BigInt(Math.floor(r() * 4000)),
      requestBytes: BigInt(Math.floor(r() * 300)),
      attributes: o.tls ? { tls: bool(true), "url.path": str(o.res) } : { "url.path": str(o.res) },
      client: o.client,
      server: o.server,
      connKey: BigInt(o.conn),
      role: o.role,
      tid: o.tid,
      node: o.node,
      trace: o.trace ? create(TraceContextSchema, { traceId: hexBytes(o.trace[0]), parentSpanId: hexBytes(o.trace[1]), format: "w3c" }) : undefined,
    });
  const n = Math.floor(seconds * perSecond);
  for (let i = 0; i < n; i++) {
    const s = t0 + (i * 1000) / perSecond;
    const d = Math.round((1 + r() * 40) * 10) / 10; // 0.1 ms steps: ties
    const conn = i % 12;
    const webTid = 500 + (i % 64);
    const path = `/items/${Math.floor(r() * 80)}`;
    const status = r() < 0.04 ? 503 : r() < 0.03 ? undefined : 200;
    const header: [string, string] | undefined = r() < 0.5 ? [hex(32), hex(16)] : undefined;
    const browser = ep(`10.1.0.${conn}`, 50000 + conn);
    const web = (pid = 400) => ep("10.0.0.1", 8080, { service: "shop/web", pid, node: "n1", namespace: "shop" });
    push(mk({ protocol: "http1", s, d, op: i % 5 ? "GET" : "POST", res: path, status, error: status === 503, role: Role.SERVER, client: browser, server: web(), conn: 1000 + conn, tid: webTid, node: "n1", trace: header, tls: i % 7 === 0 }), s + d);
    // web -> api on the same thread, inside the server request; the header relayed unchanged on some
    const cs = s + d * 0.2;
    const cd = d * 0.5;
    const relay = header && r() < 0.3 ? header : header ? ([header[0], hex(16)] as [string, string]) : undefined;
    const apiConn = 2000 + (i % 6);
    const webCli = ep("10.0.0.1", 40000 + (i % 6), { service: "shop/web", pid: 400, node: "n1", namespace: "shop" });
    const api = ep("10.0.0.2", 9090, { service: "api:9090", pid: 600, name: "api", node: "n2" });
    push(mk({ protocol: "http1", s: cs, d: cd, op: "GET", res: `/v1${path}`, status: 200, role: Role.CLIENT, client: webCli, server: api, conn: apiConn, tid: webTid, node: "n1", trace: relay }), cs + cd);
    if (i % 3) push(mk({ protocol: "http1", s: cs + 0.05, d: cd - 0.1, op: "GET", res: `/v1${path}`, status: 200, role: Role.SERVER, client: webCli, server: api, conn: apiConn + 100, tid: 601, node: "n2", trace: relay }), cs + cd - 0.05);
    // api -> mysql (server not traced)
    if (i % 2) push(mk({ protocol: "mysql", s: cs + 0.1, d: cd * 0.3, op: "SELECT", res: `SELECT * FROM items WHERE id = ${i}`, status: i % 50 ? 0 : 1064, error: i % 50 === 0, role: Role.CLIENT, client: ep("10.0.0.2", 33000 + (i % 4), { pid: 600, name: "api", node: "n2" }), server: ep("10.0.0.9", 3306), conn: 3000 + (i % 4), tid: 601, node: "n2" }), cs + 0.1 + cd * 0.3);
    // a gRPC client named by its bare name; the same pid is seen listening from the middle on
    const orders = i > n / 2 ? ep("10.0.0.3", 7000, { pid: 700, name: "orders", node: "n1" }) : undefined;
    if (orders && i % 9 === 0) push(mk({ protocol: "grpc", s: s + 0.3, d: 2, op: "Ship", res: "/shop.Orders/Ship", status: 0, role: Role.SERVER, client: ep("10.0.0.1", 41000), server: ep("10.0.0.3", 7000, { service: "orders:7000", pid: 700, name: "orders", node: "n1" }), conn: 4000, tid: 701, node: "n1" }), s + 2.3);
    if (i % 4 === 0) push(mk({ protocol: "grpc", s: s + 0.2, d: d / 2, op: "Get", res: "/shop.Stock/Get", status: i % 40 ? 0 : 14, error: i % 40 === 0, role: Role.CLIENT, client: ep("10.0.0.3", 42000 + (i % 3), { service: "orders", pid: 700, name: "orders", node: "n1" }), server: ep("10.0.0.4", 7100), conn: 5000 + (i % 3), tid: 702, node: "n1" }), s + 0.2 + d / 2);
    // h2 streams sharing one connection (both ends traced), some incomplete
    if (i % 6 === 0) {
      const c = ep("10.0.0.5", 43000, { pid: 800, name: "gw", service: "gw", node: "n1" });
      const sv = ep("10.0.0.2", 9443, { pid: 600, name: "api", service: "api:9443", node: "n2" });
      for (let k = 0; k < 2; k++) {
        const incomplete = (i + k) % 30 === 0;
        push(mk({ protocol: "http2", s: s + 0.4, d: 3 + k, op: "GET", res: `/h2/${k}`, status: incomplete ? undefined : 200, incomplete, role: Role.CLIENT, client: c, server: sv, conn: 6000, tid: 801, node: "n1" }), s + 3.4 + k);
        push(mk({ protocol: "http2", s: s + 0.5, d: 2.8 + k, op: "GET", res: `/h2/${k}`, status: incomplete ? undefined : 200, incomplete, role: Role.SERVER, client: c, server: sv, conn: 6001, tid: 602, node: "n2" }), s + 3.3 + k);
      }
    }
  }
  recs.sort((a, b) => a.end - b.end);
  const batches: Timed[] = [];
  let seq = 0n;
  for (let i = 0; i < recs.length; ) {
    const at = Math.ceil((recs[i]!.end - t0) / 20) * 20 + t0;
    const by = new Map<number, WRecord[]>();
    for (; i < recs.length && recs[i]!.end <= at; i++) {
      let l = by.get(recs[i]!.p);
      if (!l) by.set(recs[i]!.p, (l = []));
      l.push(recs[i]!.rec);
    }
    for (const [p, records] of by) batches.push({ at, subject: `wirescope.records.${p}`, bytes: toBinary(RecordBatchSchema, create(RecordBatchSchema, { node: "bench", parserId: "bench", records, partition: p, batchSeq: ++seq })) });
  }
  return batches;
}

const hexBytes = (h: string) => Uint8Array.from(h.match(/../g)!.map((x) => parseInt(x, 16)));

/**
 * Stage 7: the lines this checkout's core writes against BENCH_BASELINE's, on the same batches
 * (decoded by each core's own decoder), windows closed as the batches arrive; sha256 of every line
 * in order, and the counters. Exit code 1 when anything differs.
 */
async function benchSame(): Promise<void> {
  const base = process.env.BENCH_BASELINE;
  if (!base) throw new Error("BENCH_ONLY=same needs BENCH_BASELINE=<checkout, built>");
  const cores: [string, CoreModule][] = [
    ["before", (await import(path.resolve(base, "services/aggregator/dist/core/index.js"))) as CoreModule],
    ["this checkout", (await import("@wirescope/aggregator/core/index")) as unknown as CoreModule],
  ];
  const t0 = Math.floor(Date.now() / WINDOW) * WINDOW - 120_000;
  const workloads: [string, Timed[]][] = [
    ["16 keep-alive connections, 20,000 req/s, 6 s", keepAliveTraffic(t0, 6, 20000, 32).batches],
    ["10 requests per connection, 5,000 req/s, 12 s", keepAliveTraffic(t0, 12, 5000, 32, 10).batches],
    ["100,000 requests on one connection, 5,000 req/s, 12 s", keepAliveTraffic(t0, 12, 5000, 1, 100_000).batches],
    ["mixed, trace headers, 3,000 req/s, 25 s", mixedTraffic(t0, 25, 3000)],
  ];
  // Each core with the span budget off (the lines must be identical), then this checkout with its
  // default span budget (RED, histograms, edges and map nodes must be identical; spans fewer).
  const runs: [string, CoreModule, Record<string, unknown>][] = [
    [cores[0]![0], cores[0]![1], { spanSampleRate: 0.1 }],
    [cores[1]![0], cores[1]![1], { spanSampleRate: 0.1, spanBudget: 0 }],
    [`${cores[1]![0]}, default span budget`, cores[1]![1], { spanSampleRate: 0.1 }],
  ];
  let differ = false;
  for (const [name, batches] of workloads) {
    const got: string[] = [];
    const metricHashes: string[] = [];
    for (const [label, m, opts] of runs) {
      const agg = new m.Aggregator(opts);
      const clock = new m.SpanClock();
      const slots = m.RecordBatchSlots ? new m.RecordBatchSlots() : undefined;
      const h = createHash("sha256");
      const hm = createHash("sha256");
      let lines = 0;
      const links = new Map<string, number>();
      // Lines and bytes by measurement: what InfluxDB is given to parse and store.
      const byMeasurement = new Map<string, [number, number]>();
      const take = (ls: string[]) => {
        for (const l of ls) {
          h.update(l + "\n");
          const m = l.slice(0, l.indexOf(","));
          if (m !== "spans") hm.update(l + "\n");
          const c = byMeasurement.get(m) ?? [0, 0];
          c[0]++;
          c[1] += Buffer.byteLength(l) + 1;
          byMeasurement.set(m, c);
          const by = m === "spans" ? /linked_by="(\w*)"/.exec(l)?.[1] || "none" : undefined;
          if (by) links.set(by, (links.get(by) ?? 0) + 1);
        }
        lines += ls.length;
      };
      for (const b of batches) {
        agg.ingest(m.decodeRecordBatch(b.bytes, slots), b.at + 50);
        for (const w of agg.closeDue(b.at + 50)) take(m.windowLines(w, clock));
      }
      for (const w of agg.closeDue(t0 + 3_600_000, true)) take(m.windowLines(w, clock));
      // The work counters of linking are not output (and not in a baseline from before them), nor
      // the span budget's counter (not in a baseline from before it).
      const { linkVisits, linkIndexed, spansOverBudget, ...counters } = agg.counters as unknown as Record<string, unknown>;
      void linkVisits;
      void linkIndexed;
      const sum = `${lines} lines, sha256 ${h.digest("hex").slice(0, 16)}, counters ${createHash("sha256").update(JSON.stringify(counters)).digest("hex").slice(0, 8)}; spans linked by ${[...links].sort().map(([k, v]) => `${k} ${v}`).join(", ")}`;
      const metrics = hm.digest("hex").slice(0, 16);
      console.log(`same output, ${name}, ${label}: ${sum}; metric lines sha256 ${metrics}${spansOverBudget ? `; spans over budget ${spansOverBudget as number}, fraction at the end ${(agg as unknown as { spanFraction: number }).spanFraction}` : ""}`);
      console.log(`  lines (bytes) by measurement: ${[...byMeasurement].map(([k, [n, b]]) => `${k} ${n} (${b})`).join(", ")}`);
      got.push(sum);
      metricHashes.push(metrics);
    }
    if (got[0] !== got[1] || metricHashes[0] !== metricHashes[2]) differ = true;
  }
  console.log(differ ? "same output: DIFFER" : "same output: identical on every workload");
  if (differ) process.exitCode = 1;
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
    const js = jetstream(nc);
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
  if (process.env.BENCH_ONLY === "same") await benchSame();
  else if (process.env.BENCH_ONLY === "shape") await benchShape();
  else if (process.env.BENCH_ONLY === "decode") {
    const records = makeRecords(N);
    await benchDecode(encode(records), records);
  }
  else if (!["live", "fleet"].includes(process.env.BENCH_ONLY ?? "")) {
    const records = makeRecords(N);
    const batches = encode(records);
    await benchCore(records);
    await benchDecode(batches, records);
    await benchPipeline(batches, influx.url);
    // The service bench needs fresh timestamps (windows close by event time / idle wall clock).
    await benchService(encode(makeRecords(N)), N, influx.url, path.join(dir, "s1"), [], "spans 10%");
    await benchService(encode(makeRecords(N)), N, influx.url, path.join(dir, "s2"), ["--no-spans"], "no spans");
  }
  const liveSeconds = Number(process.env.BENCH_LIVE_SECONDS ?? 15);
  if (liveSeconds > 0 && !["shape", "fleet", "same", "decode"].includes(process.env.BENCH_ONLY ?? "")) {
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
