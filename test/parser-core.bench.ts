// The parser's data path alone (no NATS): RawBatch → ConnTable → plugins → RecordBatch bytes,
// in this process. Shows where the per-record cost goes before any I/O, and compares the two
// ways of calling the plugins side by side in alternating rounds: one ABI v2 feed_batch call per
// plugin instance and RawBatch (the parser's way) and one call per chunk (EngineOptions.batch =
// false). Run: node scripts/bench.mjs parser-core
//   INPUT=h2 (default): real h2load HTTP/2 traffic captured through a loopback relay, one
//     RawBatch per connection (4 connections of ~1,000 requests each, 10 times over per round);
//   INPUT=replay: the probe's own RawBatches of test/fixtures/raw-http1-keepalive.bin.gz (32
//     keep-alive HTTP/1.1 connections, ~25 events per message on 64 partitions: see parser-replay);
//   ONLY=batch or ONLY=chunk: one way alone, in a process of its own;
//   ROUNDS (default 6 per way): each round is the whole input on new connections. The two ways
//     take turns every SLICE (default 50) RawBatches, the first of each pair alternating, so a
//     machine whose load changes (shared) weighs on both alike.
import http2 from "node:http2";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import path from "node:path";
import fs from "node:fs";
import zlib from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ConnEventSchema, ConnKind, DataEventSchema, Direction, RawBatchSchema, Role } from "@wirescope/wire";
import { Counters } from "@wirescope/runtime";
import { Pipeline } from "@wirescope/parser/pipeline";
import { DEFAULT_MAX_DETECT_BYTES, PluginSet, LoadedPlugin } from "@wirescope/parser/wasm-plugins";
import { redactionPolicy } from "@wirescope/parser/redact";
import { DEFAULT_CONN_TABLE_OPTIONS } from "@wirescope/parser/conn-table";
import { captureThroughRelay, type Conversation } from "./parser-support.js";
import { PLUGINS_DIR, REPO_ROOT } from "./support/index.js";

const run = promisify(execFile);

async function h2(): Promise<Conversation[]> {
  const srv = http2.createServer().on("stream", (s) => {
    s.respond({ ":status": 200 });
    s.end("ok");
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  try {
    return await captureThroughRelay(port, "node-h2", async (relay) => {
      await run("h2load", ["-n", "4000", "-c", "4", "-m", "16", `http://127.0.0.1:${relay}/api/items?id=1`], { timeout: 60_000 });
    });
  } finally {
    srv.close();
  }
}

/** One round of input: RawBatch messages whose connection keys are `round`'s own. */
type Round = (round: number) => Uint8Array[];

async function h2Input(): Promise<Round> {
  const convs = await h2();
  const copies = Array.from({ length: 10 }, () => convs).flat();
  return (round) =>
    copies.map((c, i) => {
      const connKey = BigInt(round * 1000 + i + 1);
      const p = Number(connKey % 64n);
      const base = { connKey, role: Role.SERVER, localAddress: c.server.address, localPort: c.server.port, remoteAddress: c.client.address, remotePort: c.client.port, pid: 1, process: { pid: 1, name: "h2" } };
      const off = [0, 0];
      const data = c.chunks.map((ch) => {
        const ev = create(DataEventSchema, { connKey, direction: ch.dir === 0 ? Direction.INGRESS : Direction.EGRESS, seq: BigInt(off[ch.dir]!), timestampNs: ch.tsNs, tid: 7, payload: ch.bytes, originalLength: ch.bytes.length });
        off[ch.dir]! += ch.bytes.length;
        return ev;
      });
      return toBinary(RawBatchSchema, create(RawBatchSchema, { partition: p, conns: [create(ConnEventSchema, { ...base, kind: ConnKind.OPEN }), create(ConnEventSchema, { ...base, kind: ConnKind.CLOSE })], data }));
    });
}

function replayInput(): Round {
  // [u16 partition][f64 ms][u32 length][RawBatch]* (see parser-replay.bench.ts)
  const f = zlib.gunzipSync(fs.readFileSync(path.join(REPO_ROOT, "test/fixtures/raw-http1-keepalive.bin.gz")));
  const msgs: Uint8Array[] = [];
  for (let o = 0; o + 14 <= f.length; ) {
    const len = f.readUInt32LE(o + 10);
    msgs.push(f.subarray(o + 14, o + 14 + len));
    o += 14 + len;
  }
  return (round) =>
    msgs.map((m) => {
      const b = fromBinary(RawBatchSchema, m);
      const x = BigInt(round + 1) << 40n;
      for (const c of b.conns) c.connKey ^= x;
      for (const d of b.data) d.connKey ^= x;
      b.probeId = `${b.probeId}~${round}`;
      return toBinary(RawBatchSchema, b);
    });
}

const input = process.env.INPUT ?? "h2";
const rounds = Number(process.env.ROUNDS ?? 6);
const roundOf = input === "replay" ? replayInput() : await h2Input();

function pipelineOf(batch: boolean) {
  const counters = new Counters();
  const plugins = new PluginSet(DEFAULT_MAX_DETECT_BYTES, { batch });
  for (const name of ["http2", "http1"]) {
    plugins.put(LoadedPlugin.load(JSON.parse(fs.readFileSync(path.join(PLUGINS_DIR, `${name}.json`), "utf8")), fs.readFileSync(path.join(PLUGINS_DIR, `${name}.wasm`)), "builtin", () => true));
  }
  const pl = new Pipeline(plugins, { ...DEFAULT_CONN_TABLE_OPTIONS, node: "n", parserId: "p", partitions: 64, redaction: redactionPolicy(), maxBatchBytes: 512 * 1024, maxQueuedBatches: 1 << 20 }, counters);
  pl.setOwned(new Set([...Array(64).keys()]), () => undefined);
  return { pl, counters, plugins, us: [] as number[], records: 0, events: 0 };
}

// ONLY=batch or ONLY=chunk: that way alone (a process of its own, e.g. for --cpu-prof)
const only = process.env.ONLY;
const ways: Record<string, ReturnType<typeof pipelineOf>> = {};
if (only !== "chunk") ways["feed_batch per RawBatch"] = pipelineOf(true);
if (only !== "batch") ways["a call per chunk"] = pipelineOf(false);
let bytes = 0;
const inputs: Uint8Array[][] = [];
for (let k = 0; k < 2 * rounds + 2; k++) inputs.push(roundOf(k));
for (const m of inputs[0]!) bytes += fromBinary(RawBatchSchema, m).data.reduce((n, d) => n + d.payload.length, 0);
const slice = Number(process.env.SLICE ?? 50);
let next = 0;
// one unmeasured round each (JIT), then rounds in which the two ways take turns every `slice`
// RawBatches (each on its own copy of the input), the first of each turn alternating
for (let k = -1; k < rounds; k++) {
  const all = Object.values(ways);
  const msgs = all.map(() => inputs[next++]!);
  const cpu = all.map(() => 0);
  const records = all.map(() => 0);
  const feed = (w: number, from: number, to: number) => {
    const { pl } = all[w]!;
    const cpu0 = process.cpuUsage();
    for (let i = from; i < to; i++) {
      pl.onRawBytes(msgs[w]![i]!, 0);
      for (const b of pl.takeOutput()) records[w]! += b.records;
    }
    if (to === msgs[w]!.length) {
      pl.closeAll();
      for (const b of pl.takeOutput()) records[w]! += b.records;
    }
    const c = process.cpuUsage(cpu0);
    cpu[w]! += c.user + c.system;
  };
  const n = msgs[0]!.length;
  for (let from = 0, turn = 0; from < n; from += slice, turn++) {
    const to = Math.min(n, from + slice);
    for (const w of all.length === 1 ? [0] : turn % 2 === 0 ? [0, 1] : [1, 0]) feed(w, from, to);
  }
  if (k >= 0) {
    all.forEach((w, i) => {
      w.us.push(cpu[i]! / records[i]!);
      w.records = records[i]!;
    });
  }
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
console.log(`parser core, ${input}: ${inputs[0]!.length} RawBatches per round, ${(bytes / 1e6).toFixed(1)} MB; ${rounds} alternating rounds per way after one unmeasured`);
console.log("\n| plugin calls | records per round | CPU µs/record, median | rounds | feed_batch calls per round | steps per call |");
console.log("|---|---:|---:|---|---:|---:|");
for (const [name, w] of Object.entries(ways)) {
  const { calls, entries } = w.plugins.engine.batched;
  console.log(`| ${name} | ${w.records} | **${median(w.us).toFixed(2)}** | ${w.us.map((u) => u.toFixed(2)).join(", ")} | ${Math.round(calls / (rounds + 1))} | ${calls ? (entries / calls).toFixed(1) : "–"} |`);
}
const [a, b] = Object.values(ways);
const same = !b || JSON.stringify(a!.counters.snapshot()) === JSON.stringify(b.counters.snapshot());
console.log(`\ncounters of the two ways ${same ? "identical" : "DIFFER"}: ${JSON.stringify(Object.fromEntries(Object.entries(a!.counters.snapshot()).filter(([k]) => !k.startsWith("records."))))}`);
