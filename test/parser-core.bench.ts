// The parser's data path alone (no NATS): RawBatch → ConnTable → plugins → RecordBatch bytes,
// in this process, on real h2load HTTP/2 traffic captured through a loopback relay. Shows where
// the per-record cost goes before any I/O. Run: node scripts/bench.mjs parser-core
import http2 from "node:http2";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import path from "node:path";
import fs from "node:fs";
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnEventSchema, ConnKind, DataEventSchema, Direction, RawBatchSchema, Role } from "@wirescope/wire";
import { Counters } from "@wirescope/runtime";
import { Pipeline } from "@wirescope/parser/pipeline";
import { PluginSet, LoadedPlugin } from "@wirescope/parser/wasm-plugins";
import { redactionPolicy } from "@wirescope/parser/redact";
import { DEFAULT_CONN_TABLE_OPTIONS } from "@wirescope/parser/conn-table";
import { captureThroughRelay, type Conversation } from "./parser-support.js";
import { PLUGINS_DIR } from "./support/index.js";

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

const convs = await h2();
const counters = new Counters();
const plugins = new PluginSet();
for (const name of ["http2", "http1"]) {
  const dir = PLUGINS_DIR;
  plugins.put(LoadedPlugin.load(JSON.parse(fs.readFileSync(path.join(dir, `${name}.json`), "utf8")), fs.readFileSync(path.join(dir, `${name}.wasm`)), "builtin", () => true));
}
const pl = new Pipeline(plugins, { ...DEFAULT_CONN_TABLE_OPTIONS, node: "n", parserId: "p", partitions: 64, redaction: redactionPolicy(), maxBatchBytes: 512 * 1024, maxQueuedBatches: 1 << 20 }, counters);
pl.setOwned(new Set([...Array(64).keys()]), () => undefined);
let key = 1n;
let records = 0;
let bytes = 0;
const t0 = performance.now();
const cpu0 = process.cpuUsage();
for (let round = 0; round < Number(process.env.ROUNDS ?? 40); round++) {
  for (const c of convs) {
    const connKey = key++;
    const p = Number(connKey % 64n);
    const base = { connKey, role: Role.SERVER, localAddress: c.server.address, localPort: c.server.port, remoteAddress: c.client.address, remotePort: c.client.port, pid: 1, process: { pid: 1, name: "h2" } };
    const off = [0, 0];
    const data = c.chunks.map((ch) => {
      const ev = create(DataEventSchema, { connKey, direction: ch.dir === 0 ? Direction.INGRESS : Direction.EGRESS, seq: BigInt(off[ch.dir]!), timestampNs: ch.tsNs, tid: 7, payload: ch.bytes, originalLength: ch.bytes.length });
      off[ch.dir]! += ch.bytes.length;
      bytes += ch.bytes.length;
      return ev;
    });
    pl.onRawBytes(toBinary(RawBatchSchema, create(RawBatchSchema, { partition: p, conns: [create(ConnEventSchema, { ...base, kind: ConnKind.OPEN }), create(ConnEventSchema, { ...base, kind: ConnKind.CLOSE })], data })), 0);
    for (const b of pl.takeOutput()) records += b.records;
  }
}
const s = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
console.log(`http2 core: ${records} records in ${s.toFixed(2)} s = ${Math.round(records / s).toLocaleString("en")} records/s, ${(bytes / 1e6 / s).toFixed(1)} MB/s, ${(((cpu.user + cpu.system) / records)).toFixed(2)} CPU µs/record`);
console.log(JSON.stringify(Object.fromEntries(Object.entries(counters.snapshot()).filter(([k]) => !k.startsWith("records.")))));
