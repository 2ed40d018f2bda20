// Parser throughput, end to end from NATS in to NATS out (JetStream), per protocol: records/s and
// MB/s of raw input one replica sustains, its CPU per record, and the ratio of 2 replicas over 1.
//
// Traffic is real: h2load (HTTP/2 and HTTP/1.1) against node:http2 / node:http servers and
// redis-benchmark against redis-server, captured through a loopback relay; MySQL and Kafka from
// the shared pcap captures. Conversations are replicated under fresh connection keys and packed
// into RawBatches (many connections per batch, one partition per batch) the way the probe does.
// Publishing is paced by the replicas' own `raw_batches` counter (a bounded window in flight), so
// the figure is what they sustain without dropping input.
//
// Run: npm run build && node scripts/bench.mjs parser-throughput
import fs from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnEventSchema, ConnKind, DataEventSchema, Direction, RawBatchSchema, Role, type ConnEvent, type DataEvent } from "@wirescope/wire";
import { startNats, PLUGINS_DIR, REDIS_PLUGIN_DIR } from "./support/index.js";
import { SHARED_CAPTURES } from "@wirescope/capture/test-support/pcap";
import { captureThroughRelay, conversationsFromCapture, natsClient, parserStatus, startParser, startRedis, waitForFleet, type Conversation, type ParserProc } from "./parser-support.js";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";

const run = promisify(execFile);
const P = 64;
const EVENTS_PER_BATCH = 64;
const WINDOW = Number(process.env.WIRESCOPE_BENCH_WINDOW ?? 128); // batches in flight
const TARGET_RAW_BYTES = Number(process.env.WIRESCOPE_BENCH_MB ?? 48) * 1024 * 1024;

interface Workload {
  name: string;
  convs: Conversation[];
}

async function h2loadTraffic(h1: boolean): Promise<Conversation[]> {
  const srv = h1
    ? http.createServer((_req, res) => {
        res.setHeader("content-type", "application/json");
        res.end('{"ok":true}');
      })
    : http2.createServer().on("stream", (stream) => {
        stream.respond({ ":status": 200, "content-type": "application/json" });
        stream.end('{"ok":true}');
      });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  try {
    return await captureThroughRelay(port, h1 ? "node-http" : "node-h2", async (relay) => {
      const args = ["-n", "4000", "-c", "4", "-m", "16", `http://127.0.0.1:${relay}/api/items?id=1`];
      await run("h2load", h1 ? ["--h1", ...args] : args, { timeout: 60_000 });
    });
  } finally {
    srv.close();
  }
}

async function redisTraffic(): Promise<Conversation[]> {
  const r = await startRedis();
  try {
    return await captureThroughRelay(r.port, "redis-server", async (relay) => {
      await run("redis-benchmark", ["-p", String(relay), "-n", "4000", "-c", "4", "-t", "set,get", "-q"], { timeout: 60_000 });
    });
  } finally {
    await r.proc.stop();
  }
}

/** Packs replicated conversations into RawBatches until `target` raw bytes; returns them. */
function pack(convs: Conversation[], target: number, keyBase: bigint, probeId: string): { batches: { subject: string; bytes: Uint8Array }[]; rawBytes: number; lastSeq: Map<number, number> } {
  const perPart = new Map<number, { conns: ConnEvent[]; data: DataEvent[] }>();
  const out: { subject: string; bytes: Uint8Array }[] = [];
  const seqs = new Map<number, number>();
  let rawBytes = 0;
  const flush = (p: number) => {
    const b = perPart.get(p);
    if (!b || (!b.conns.length && !b.data.length)) return;
    const seq = (seqs.get(p) ?? 0) + 1;
    seqs.set(p, seq);
    out.push({ subject: `wirescope.raw.${p}`, bytes: toBinary(RawBatchSchema, create(RawBatchSchema, { node: "bench", probeId, partition: p, batchSeq: BigInt(seq), conns: b.conns, data: b.data })) });
    perPart.set(p, { conns: [], data: [] });
  };
  let key = keyBase;
  while (rawBytes < target) {
    for (const c of convs) {
      if (rawBytes >= target) break;
      const connKey = key++;
      const p = Number(connKey % BigInt(P));
      if (!perPart.has(p)) perPart.set(p, { conns: [], data: [] });
      let b = perPart.get(p)!;
      const base = { connKey, role: Role.SERVER, localAddress: c.server.address, localPort: c.server.port, remoteAddress: c.client.address, remotePort: c.client.port, pid: 1, process: { pid: 1, name: c.serverProcess } };
      b.conns.push(create(ConnEventSchema, { ...base, kind: ConnKind.OPEN, timestampNs: c.startNs }));
      const off = [0, 0];
      for (const ch of c.chunks) {
        const len = ch.gap ?? ch.bytes.length;
        b.data.push(create(DataEventSchema, { connKey, direction: ch.dir === 0 ? Direction.INGRESS : Direction.EGRESS, seq: BigInt(off[ch.dir]!), timestampNs: ch.tsNs, tid: 7, payload: ch.bytes, originalLength: len }));
        off[ch.dir]! += len;
        rawBytes += ch.bytes.length;
        if (b.data.length >= EVENTS_PER_BATCH) {
          flush(p);
          b = perPart.get(p)!; // the next batch of this partition
        }
      }
      perPart.get(p)!.conns.push(create(ConnEventSchema, { ...base, kind: ConnKind.CLOSE, timestampNs: c.endNs }));
    }
  }
  for (const p of [...perPart.keys()]) flush(p);
  return { batches: out, rawBytes, lastSeq: seqs };
}

function cpuMs(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const parts = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return ((Number(parts[11]) + Number(parts[12])) * 1000) / 100; // utime + stime, clock ticks of 10 ms
}

async function sum(fleet: ParserProc[], name: string): Promise<number> {
  return (await Promise.all(fleet.map(parserStatus))).reduce((n, s) => n + (s.counters[name] ?? 0), 0);
}

interface Result {
  records: number;
  seconds: number;
  rawMB: number;
  cpuUsPerRecord: number;
  dropped: number;
}

/**
 * Publishes a workload with at most WINDOW batches in flight, where "done" is what the replicas
 * have published and had acknowledged: the per-partition progress they write into their
 * membership entries (KV wirescope-parsers) after every flush. Watching that costs the parsers
 * nothing extra, unlike polling their status.
 */
async function measure(nc: Awaited<ReturnType<typeof natsClient>>, fleet: ParserProc[], w: Workload, keyBase: bigint, probeId: string): Promise<Result> {
  const { batches, rawBytes, lastSeq } = pack(w.convs, TARGET_RAW_BYTES, keyBase, probeId);
  const progress = new Map<string, number>();
  const kv = await new Kvm(nc).create("wirescope-parser-progress");
  const watch = await kv.watch({ key: ">" });
  let done = 0;
  let finishedAt = 0;
  const expected = [...lastSeq.values()].reduce((a, b) => a + b, 0);
  const t0 = performance.now();
  void (async () => {
    for await (const e of watch) {
      if (e.operation !== "PUT") continue;
      const prog = (e.json<Record<string, number>>() ?? {}) as Record<string, number>;
      for (const [k, v] of Object.entries(prog)) {
        if (!k.startsWith(probeId + "/")) continue;
        const old = progress.get(k) ?? 0;
        if (v > old) {
          progress.set(k, v);
          done += v - old;
        }
      }
      if (done >= expected && !finishedAt) finishedAt = performance.now();
    }
  })();
  const rec0 = await sum(fleet, "records_published");
  const drop0 = await sum(fleet, "raw_drops_sub_queue_full");
  const cpu0 = fleet.map((p) => cpuMs(p.proc.pid));
  const t1 = performance.now();
  let sent = 0;
  while (sent < batches.length) {
    while (sent < batches.length && sent - done < WINDOW) {
      nc.publish(batches[sent]!.subject, batches[sent]!.bytes);
      sent++;
    }
    await nc.flush();
    await new Promise((r) => setTimeout(r, 2));
    if (performance.now() - t0 > 300_000) break;
  }
  while (!finishedAt && performance.now() - t1 < 120_000) {
    await new Promise((r) => setTimeout(r, 5));
    if ((await sum(fleet, "raw_drops_sub_queue_full")) > drop0) break; // input lost: cannot finish
  }
  const tEnd = finishedAt || performance.now();
  const cpu = fleet.reduce((n, p, i) => n + cpuMs(p.proc.pid) - cpu0[i]!, 0);
  watch.stop();
  const records = (await sum(fleet, "records_published")) - rec0;
  const seconds = (tEnd - t1) / 1000;
  return { records, seconds, rawMB: rawBytes / 1e6, cpuUsPerRecord: (cpu * 1000) / Math.max(1, records), dropped: (await sum(fleet, "raw_drops_sub_queue_full")) - drop0 };
}

async function main(): Promise<void> {
  const nats = await startNats({ jetstream: true });
  const nc = await natsClient(nats.url);
  const fleets: ParserProc[] = [];
  try {
    const caps = (fs2: string[]) => fs2.flatMap((f) => conversationsFromCapture(path.join(SHARED_CAPTURES, f)));
    const workloads: Workload[] = [
      { name: "http2", convs: await h2loadTraffic(false) },
      { name: "http1", convs: await h2loadTraffic(true) },
      { name: "redis", convs: await redisTraffic() },
      { name: "mysql", convs: caps(["mysql/zeek__mysql.pcap", "mysql/deepflow__mysql-statement.pcap"]) },
      { name: "kafka", convs: caps(["kafka/deepflow__00-produce-v2.pcap", "kafka/deepflow__01-fetch-v12-ok.pcap", "kafka/deepflow__18-api-versions-v3.pcap"]) },
    ];
    const args = ["--builtin-dir", PLUGINS_DIR, "--plugin-dir", REDIS_PLUGIN_DIR, "--log-level", "warn"];
    const rows: string[] = [];
    const results = new Map<string, Result>();
    let keyBase = 1n;
    const only = process.env.WIRESCOPE_BENCH_ONLY?.split(",");
    const replicaCounts = (process.env.WIRESCOPE_BENCH_REPLICAS ?? "1,2").split(",").map(Number);
    for (const n of replicaCounts) {
      const jsm = await jetstreamManager(nc);
      const fleet: ParserProc[] = [];
      for (let i = 0; i < n; i++) fleet.push(await startParser(nats.url, args.filter((a) => a !== "--log-level" && a !== "warn"), `bench-${n}-${i}`));
      fleets.push(...fleet);
      await waitForFleet(fleet, P);
      for (const w of workloads) {
        if (only && !only.includes(w.name)) continue;
        await jsm.streams.purge("WIRESCOPE_RECORDS").catch(() => undefined);
        const r = await measure(nc, fleet, w, keyBase, `bench-${w.name}-${n}`);
        keyBase += 10_000_000n;
        results.set(`${w.name}/${n}`, r);
        if (process.env.WIRESCOPE_BENCH_VERBOSE) {
          const st = await Promise.all(fleet.map(parserStatus));
          console.log(JSON.stringify(st.map((x) => Object.fromEntries(Object.entries(x.counters).filter(([k]) => /dropped|missed|gaps|unclaimed|midstream|drops|closed|host\./.test(k))))));
        }
        const ratio = n === 2 && results.has(`${w.name}/1`) ? ` | ${(r.records / r.seconds / (results.get(`${w.name}/1`)!.records / results.get(`${w.name}/1`)!.seconds)).toFixed(2)}x` : " | ";
        rows.push(
          `| ${w.name} | ${n} | ${Math.round(r.records / r.seconds).toLocaleString("en")} | ${(r.rawMB / r.seconds).toFixed(1)} | ${r.cpuUsPerRecord.toFixed(1)} | ${r.records} | ${r.dropped}${ratio} |`,
        );
        console.log(rows.at(-1));
      }
      for (const p of fleet) await p.proc.stop();
    }
    console.log("\n| protocol | replicas | records/s | raw MB/s | CPU µs/record | records | input dropped | 2-over-1 |\n|---|---|---|---|---|---|---|---|");
    for (const r of rows) console.log(r);
  } finally {
    await nc.close();
    for (const p of fleets) await p.proc.stop();
    await nats.stop();
  }
}

await main();
