// The probe's RawBatch encoder alone (`RawEncoder.encode`, no NATS, no kernel): native batches
// built as the ring buffer hands them over, shaped like the node-share workload (node:http with
// chunked BODY-byte responses, both ends traced: four data events and two records per request),
// 250 requests per native batch, 64 partitions, messages cut per batch (holdMs 0). Shapes:
// keep-alive (16 connections), per-conn (an open and a close for each end every PER_CONN
// requests), each without and with the HTTP/1.1 body trimmer. CPU (process.cpuUsage) per record.
//
//   npm run bench -- raw-encoder        (or: node --expose-gc services/probe/dist/raw-encoder.bench.js)
//     BATCHES (default 400) native batches per shape and round, ROUNDS (default 5), BODY (512),
//     PER_CONN (10).
//   --against CHECKOUT: the same batches through CHECKOUT's encoder too
//     (CHECKOUT/services/probe/dist/raw-encoder.js, built), the two alternating round by round in
//     this process; the messages of both must be equal byte for byte, or the bench fails.
//     ONLY=this or ONLY=against: that encoder alone (for a profile, or `perf stat -e instructions:u`
//     of two runs with different BATCHES: instructions per record whatever the machine's load).
import { ProcessCache } from "./process-info.js";
import { Http1Trimmer } from "./http1-trim.js";
import { DATA, CONN, WS_EV_DATA, WS_EV_OPEN, WS_EV_CLOSE } from "./gen/layout.js";
import { eventRecord, frameRecord } from "./test-support/ring-records.js";
import type * as Mine from "./raw-encoder.js";

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const BATCHES = env("BATCHES", 400);
const ROUNDS = env("ROUNDS", 5);
const BODY = env("BODY", 512);
const PER_CONN = env("PER_CONN", 10);
const PER_BATCH = 250;
const at = process.argv.indexOf("--against");
const against = at > 0 ? process.argv[at + 1] : undefined;

const TGID = 4321;
function data(key: bigint, seq: bigint, payload: Buffer, dir: number, ts: bigint): Buffer {
  const b = eventRecord(WS_EV_DATA, key, DATA.headerSize + payload.length, { tgid: TGID, tid: TGID + 1, tsNs: ts });
  b.writeBigUInt64LE(seq, DATA.seq);
  b.writeUInt32LE(payload.length, DATA.original_length);
  b.writeUInt32LE(payload.length, DATA.len);
  b[DATA.direction] = dir;
  payload.copy(b, DATA.payload);
  return b;
}
function conn(type: number, key: bigint, server: boolean, ts: bigint): Buffer {
  const b = eventRecord(type, key, CONN.size, { tgid: TGID, tid: TGID + 1, tsNs: ts });
  b.writeUInt16LE(2, CONN.family);
  b.set([127, 0, 0, 1], CONN.laddr);
  b.set([127, 0, 0, 1], CONN.raddr);
  b.writeUInt16LE(server ? 8080 : 40000 + Number(key & 0xfffn), CONN.lport);
  b.writeUInt16LE(server ? 40000 + Number(key & 0xfffn) : 8080, CONN.rport);
  b[CONN.role] = server ? 2 : 1;
  b.write("node", CONN.comm);
  return b;
}

/** Native batches of `n` requests each; `perConn` 0 = 16 keep-alive connections opened before. */
function batches(count: number, perConn: number): { batches: Buffer[]; records: number; opens: Buffer } {
  const req = Buffer.from("GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: h2load nghttp2/1.52.0\r\nAccept: */*\r\n\r\n");
  const resp = Buffer.concat([
    Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nDate: Wed, 02 Dec 2026 17:00:00 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n${BODY.toString(16)}\r\n`),
    Buffer.alloc(BODY, "x"),
    Buffer.from("\r\n0\r\n\r\n"),
  ]);
  const base = 0x3a5n << 40n;
  let ts = 1_000_000_000_000n;
  let next = 1n;
  let open: { c: bigint; s: bigint; seq: bigint; n: number }[] = [];
  const fresh = () => ({ c: base | next++, s: base | next++, seq: 0n, n: 0 });
  const pre: Buffer[] = [];
  if (!perConn) for (let i = 0; i < 16; i++) open.push(fresh());
  for (const x of open) pre.push(conn(WS_EV_OPEN, x.c, false, ts), conn(WS_EV_OPEN, x.s, true, ts));
  const out: Buffer[] = [];
  let records = 0;
  for (let b = 0; b < count; b++) {
    const recs: Buffer[] = [];
    for (let r = 0; r < PER_BATCH; r++) {
      let x: (typeof open)[number];
      if (perConn) {
        if (open.length < 16) {
          x = fresh();
          recs.push(conn(WS_EV_OPEN, x.c, false, ts), conn(WS_EV_OPEN, x.s, true, ts));
          open.push(x);
        } else x = open[r % 16]!;
      } else x = open[r % 16]!;
      ts += 200_000n;
      recs.push(data(x.c, x.seq, req, 1, ts), data(x.s, x.seq, req, 2, ts + 20_000n));
      recs.push(data(x.s, x.seq + BigInt(req.length), resp, 1, ts + 60_000n), data(x.c, x.seq + BigInt(req.length), resp, 2, ts + 80_000n));
      x.seq += BigInt(req.length + resp.length);
      records += 2;
      if (perConn && ++x.n === perConn) {
        recs.push(conn(WS_EV_CLOSE, x.c, false, ts + 90_000n), conn(WS_EV_CLOSE, x.s, true, ts + 90_000n));
        open = open.filter((y) => y !== x);
      }
    }
    out.push(Buffer.concat(recs.map(frameRecord)));
  }
  return { batches: out, records, opens: Buffer.concat(pre.map(frameRecord)) };
}

type EncoderModule = typeof Mine;
const mods: [string, EncoderModule][] = [["this", await import("./raw-encoder.js")]];
if (against) mods.push([against, (await import(`${against}/services/probe/dist/raw-encoder.js`)) as EncoderModule]);

const shapes = [
  { name: "keep-alive", trim: false, ...batches(BATCHES, 0) },
  { name: "keep-alive, trimmed", trim: true, ...batches(BATCHES, 0) },
  { name: `${PER_CONN} per conn`, trim: false, ...batches(BATCHES, PER_CONN) },
  { name: `${PER_CONN} per conn, trimmed`, trim: true, ...batches(BATCHES, PER_CONN) },
];
const only = process.env.ONLY;
const encoders = mods.filter(([name]) => !only || (only === "this") === (name === "this")).map(([name, m]) => ({
  name,
  by: new Map(shapes.map((s) => [s.name, new m.RawEncoder({
    node: "bench-node", probeId: "bench-probe", partitions: 64, processes: new ProcessCache({ procRoot: "/nonexistent" }),
    monoToWallOffsetNs: 1_795_000_000_000_000_000n, maxBatchBytes: 1 << 20, trimmer: s.trim ? new Http1Trimmer() : undefined,
  })])),
}));

// every message of every encoder, byte for byte: the first round's are compared
const firstRound = new Map<string, Buffer>();
const results = new Map<string, number[]>();
for (let round = 0; round < ROUNDS + 1; round++) {
  for (const s of shapes) {
    for (const e of round % 2 ? [...encoders].reverse() : encoders) {
      const enc = e.by.get(s.name)!;
      if (round === 0) enc.encode(s.opens);
      (globalThis as { gc?: () => void }).gc?.();
      const parts: Buffer[] = [];
      const t0 = process.cpuUsage();
      for (const b of s.batches) {
        const r = enc.encode(b);
        if (round === 0) for (const m of r.messages) parts.push(Buffer.from(m.data));
      }
      const t = process.cpuUsage(t0);
      if (round === 0) {
        const all = Buffer.concat(parts);
        const seen = firstRound.get(s.name);
        if (!seen) firstRound.set(s.name, all);
        else if (!seen.equals(all)) {
          console.error(`${s.name}: ${e.name}'s messages differ from ${encoders[0]!.name}'s`);
          process.exitCode = 1;
        }
        continue; // round 0 warms up
      }
      const key = `${s.name}\t${e.name}`;
      results.set(key, [...(results.get(key) ?? []), ((t.user + t.system) * 1000) / s.records]);
    }
  }
}
const fmt = (v: number[]) => v.map((x) => x.toFixed(0)).join(" ");
console.log(`ns CPU per record (${BATCHES} batches of ${PER_BATCH} requests, ${BODY}-byte bodies, ${ROUNDS} rounds; load ${(await import("node:os")).loadavg().map((x) => x.toFixed(1)).join(" ")})`);
for (const [k, v] of results) {
  const sorted = [...v].sort((a, b) => a - b);
  console.log(`${k}\tmedian ${sorted[sorted.length >> 1]!.toFixed(0)}\t(${fmt(v)})`);
}
if (encoders.length > 1) console.log(firstRound.size && !process.exitCode ? "messages equal byte for byte" : "MESSAGES DIFFER");
