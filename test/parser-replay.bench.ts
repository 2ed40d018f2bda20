// The parser process on the real shape of its input: RawBatch messages recorded from the probe
// during `pipeline-cost.sh CHECKOUT 10 5000` (node:http, h2load --h1 -c 16 --rps 5000, both ends
// traced: 10,000 records/s; 64 partitions, ~25 events per message), replayed to a real
// nats-server at their recorded times, into a real `wirescope parser`. Measures the parser
// process's CPU (all threads, /proc) per record it published.
//
//   test/fixtures/raw-http1-keepalive.bin.gz: [u16 partition][f64 ms][u32 length][RawBatch]*,
//   3 s, 32 connections (their opens included), only the traffic of the loaded server's port.
//   Each further loop is the same traffic on new connections (conn_key and probe_id changed).
//
// Run: npm run bench -- parser-replay        LOOPS (default 3), SPEED (default 1 = recorded rate),
//      WARMUP loops replayed before measuring (default 1: a long-running parser is compiled and
//      warm; WARMUP=0 measures from a cold start, as pipeline-cost.sh does)
//      BASELINE=/path/to/other/checkout (built) runs its parser too, side by side in this run,
//      alternating ROUNDS times (default 3 with a baseline, else 1); the median row sums them up.
//      PARSER_ARGS="--flush-ms 100" adds parser flags; WIRESCOPE_PARSER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the parser.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { NatsConnection } from "@nats-io/nats-core";
import { RawBatchSchema, RecordBatchSchema } from "@wirescope/wire";
import { natsClient, parserStatus, startParser } from "./parser-support.js";
import { REPO_ROOT, startNats } from "./support/index.js";

interface Msg {
  partition: number;
  ms: number;
  bytes: Uint8Array;
}

function loadFixture(): { msgs: Msg[]; durationMs: number } {
  const f = zlib.gunzipSync(fs.readFileSync(path.join(REPO_ROOT, "test/fixtures/raw-http1-keepalive.bin.gz")));
  const msgs: Msg[] = [];
  for (let o = 0; o + 14 <= f.length; ) {
    const len = f.readUInt32LE(o + 10);
    msgs.push({ partition: f.readUInt16LE(o), ms: f.readDoubleLE(o + 2), bytes: f.subarray(o + 14, o + 14 + len) });
    o += 14 + len;
  }
  return { msgs, durationMs: msgs[msgs.length - 1]!.ms + 1 };
}

/** The recording `loops` times over, each loop on connections of its own. */
function schedule(loops: number, speed: number): Msg[] {
  const { msgs, durationMs } = loadFixture();
  const out: Msg[] = [];
  for (let k = 0; k < loops; k++) {
    for (const m of msgs) {
      let bytes = m.bytes;
      if (k > 0) {
        const b = fromBinary(RawBatchSchema, m.bytes);
        const x = BigInt(k) << 32n;
        for (const c of b.conns) c.connKey ^= x;
        for (const d of b.data) d.connKey ^= x;
        b.probeId = `${b.probeId}~${k}`;
        bytes = toBinary(RawBatchSchema, b);
      }
      out.push({ partition: m.partition, ms: (k * durationMs + m.ms) / speed, bytes });
    }
  }
  return out;
}

const cpuTicks = (pid: number) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const v = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return Number(v[11]) + Number(v[12]); // utime + stime (fields 14, 15)
};
const HZ = 100; // USER_HZ on Linux

interface Result {
  name: string;
  records: number;
  /** RecordBatch bytes published. */
  outBytes: number;
  cpuS: number;
  wallS: number;
  counters: Record<string, number>;
}

/** Publishes `msgs` at their times (ms from the first), then waits until no record came for 1 s. */
async function replay(nc: NatsConnection, msgs: Msg[], quiet: () => number): Promise<void> {
  const t0 = performance.now();
  const start = msgs[0]?.ms ?? 0;
  let i = 0;
  while (i < msgs.length) {
    const now = performance.now() - t0;
    while (i < msgs.length && msgs[i]!.ms - start <= now) {
      nc.publish(`wirescope.raw.${msgs[i]!.partition}`, msgs[i]!.bytes);
      i++;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await nc.flush();
  // done when no record arrived for 1 s (the parser flushes every 20 ms)
  const t1 = performance.now();
  while (performance.now() - Math.max(t1, quiet()) < 1000) await new Promise((r) => setTimeout(r, 100));
}

async function runOnce(name: string, checkout: string, warm: Msg[], msgs: Msg[]): Promise<Result> {
  const nats = await startNats({ jetstream: true });
  const parser = await startParser(nats.url, process.env.PARSER_ARGS?.split(" ").filter(Boolean) ?? [], `parser-${name}`, checkout);
  const nc = await natsClient(nats.url);
  try {
    let records = 0;
    let outBytes = 0;
    let lastGrowth = performance.now();
    nc.subscribe("wirescope.records.>", {
      callback: (_e, m) => {
        records += fromBinary(RecordBatchSchema, m.data).records.length;
        outBytes += m.data.length;
        lastGrowth = performance.now();
      },
    });
    await nc.flush();
    await new Promise((r) => setTimeout(r, 1000)); // parser settled (membership, stream)
    if (warm.length) await replay(nc, warm, () => lastGrowth);
    records = 0;
    outBytes = 0;
    const cpu0 = cpuTicks(parser.proc.pid);
    const t0 = performance.now();
    await replay(nc, msgs, () => lastGrowth);
    const cpu1 = cpuTicks(parser.proc.pid);
    const wallS = (performance.now() - t0) / 1000;
    const counters = (await parserStatus(parser)).counters;
    return { name, records, outBytes, cpuS: (cpu1 - cpu0) / HZ, wallS, counters };
  } finally {
    await nc.close();
    await parser.proc.stop();
    await nats.stop();
  }
}

const loops = Number(process.env.LOOPS ?? 3);
const speed = Number(process.env.SPEED ?? 1);
const warmup = Number(process.env.WARMUP ?? 1);
const all = schedule(warmup + loops, speed);
const perLoop = all.length / (warmup + loops);
const warm = all.slice(0, warmup * perLoop);
const msgs = all.slice(warmup * perLoop);
const events = msgs.reduce((n, m) => n + fromBinary(RawBatchSchema, m.bytes).data.length, 0);
console.log(`replay: ${msgs.length} RawBatch messages, ${events} data events, ${((msgs[msgs.length - 1]!.ms - msgs[0]!.ms) / 1000).toFixed(1)} s (${loops} loops after ${warmup} unmeasured, speed ${speed})`);
const runs: [string, string][] = [];
if (process.env.BASELINE) runs.push(["baseline", path.resolve(process.env.BASELINE)]);
runs.push(["this", REPO_ROOT]);
const rounds = Number(process.env.ROUNDS ?? (process.env.BASELINE ? 3 : 1));
const results: Result[] = [];
for (let k = 0; k < rounds; k++) for (const [name, checkout] of runs) results.push(await runOnce(name, checkout, warm, msgs));
console.log("\n| parser | records | CPU s | CPU µs/record | bytes out/record | raw batches | decode errors | records/s |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
for (const r of results) {
  const c = r.counters;
  console.log(
    `| ${r.name} | ${r.records} | ${r.cpuS.toFixed(2)} | ${((r.cpuS * 1e6) / r.records).toFixed(1)} | ${Math.round(r.outBytes / r.records)} | ${c["raw_batches"] ?? 0} | ${(c["raw_decode_errors"] ?? 0) + (c["raw_batches_dropped.malformed"] ?? 0)} | ${Math.round(r.records / r.wallS)} |`,
  );
}
if (rounds > 1) {
  for (const [name] of runs) {
    const us = results.filter((r) => r.name === name).map((r) => (r.cpuS * 1e6) / r.records).sort((a, b) => a - b);
    console.log(`| **${name}, median of ${rounds}** | | | **${us[Math.floor(us.length / 2)]!.toFixed(1)}** (${us.map((u) => u.toFixed(1)).join(", ")}) | | | | |`);
  }
}
const drops = results.map((r) => `${r.name}: ${JSON.stringify(Object.fromEntries(Object.entries(r.counters).filter(([k, v]) => v && /drop|error|missed|gap/.test(k))))}`);
console.log(`\ncounted losses: ${drops.join("; ")}`);
process.exit(0);
