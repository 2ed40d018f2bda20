import { test } from "node:test";
import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { RawBatchSchema } from "@wirescope/common";
import { RawEncoder } from "./raw-encoder.js";
import { RawBatcher } from "./raw-batcher.js";
import { ProcessCache } from "./process-info.js";
import { connPartition } from "./partition.js";
import { decodeBatch } from "./decode.js";
import { PartitionHash } from "./partition.js";
import { HDR, DATA, CONN, WS_EV_DATA, WS_EV_OPEN, WS_EV_CLOSE, WS_CONN_F_TLS } from "./gen/layout.js";
import { Http1Trimmer } from "./http1-trim.js";

function frame(rec: Buffer): Buffer {
  const b = Buffer.alloc((4 + rec.length + 7) & ~7);
  b.writeUInt32LE(rec.length, 0);
  rec.copy(b, 4);
  return b;
}

function rec(type: number, key: bigint, size: number, ts: bigint): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt32LE(type, HDR.type);
  b.writeUInt32LE(4321, HDR.tgid);
  b.writeUInt32LE(4322, HDR.tid);
  b.writeBigUInt64LE(ts, HDR.ts_ns);
  b.writeBigUInt64LE(key, HDR.conn_key);
  return b;
}

function data(key: bigint, seq: bigint, payload: Buffer, original: number, dir: number, ts: bigint): Buffer {
  const b = rec(WS_EV_DATA, key, DATA.headerSize + payload.length, ts);
  b.writeBigUInt64LE(seq, DATA.seq);
  b.writeUInt32LE(original, DATA.original_length);
  b.writeUInt32LE(payload.length, DATA.len);
  b[DATA.direction] = dir;
  payload.copy(b, DATA.payload);
  return b;
}

function open(key: bigint): Buffer {
  const b = rec(WS_EV_OPEN, key, CONN.size, 5n);
  b.writeUInt16LE(2, CONN.family);
  b.writeUInt16LE(1234, CONN.lport);
  b.writeUInt16LE(80, CONN.rport);
  b[CONN.role] = 1;
  b.write("curl", CONN.comm);
  return b;
}

test("RawEncoder: the bytes decode to the same RawBatch content as the object path", () => {
  const base = 0xabcdefn << 40n;
  const keys = [base | 1n, base | 2n, base | 300000n, 1n];
  const offset = 1_795_000_000_000_000_000n;
  const recs: Buffer[] = [];
  keys.forEach((k) => recs.push(open(k)));
  let i = 0;
  for (const k of keys) {
    recs.push(data(k, 0n, Buffer.from("hello"), 5, 1, 123_456_789_012n + BigInt(i++)));
    recs.push(data(k, 2n ** 33n + 7n, Buffer.alloc(300, 7), 1000, 2, 0xffff_ffffn)); // carry into the high word
    recs.push(data(k, 12n, Buffer.alloc(0), 70000, 1, 1n)); // a pure gap
  }
  const buf = Buffer.concat(recs.map(frame));
  const mk = () => new RawBatcher({ node: "n", probeId: "p", partition: (key) => connPartition("n", key, 16), toWall: (t) => t + offset, processes: new ProcessCache({ procRoot: "/nonexistent" }), maxBatchBytes: 1 << 20 });
  const enc = new RawEncoder({ node: "n", partitions: 16, monoToWallOffsetNs: offset, maxBatchBytes: 1 << 20 }, mk());
  const r = enc.encode(buf);
  assert.equal(r.events, keys.length * 4);
  assert.equal(r.bytes, keys.length * 305);
  assert.equal(enc.decodeStats.errors, 0);
  const fast = r.messages.map((m) => ({ p: m.partition, b: fromBinary(RawBatchSchema, m.data) }));
  const slow = mk().build(decodeBatch(buf));
  const norm = (b: typeof slow[number]["batch"]) => ({
    partition: b.partition, batchSeq: b.batchSeq, node: b.node, probeId: b.probeId,
    conns: b.conns.map((c) => [c.connKey, c.kind, c.role, c.localPort, c.remotePort, c.timestampNs]),
    data: b.data.map((d) => [d.connKey, d.direction, d.seq, d.timestampNs, d.tid, Buffer.from(d.payload).toString("hex"), d.originalLength]),
  });
  assert.deepEqual(
    fast.map((f) => norm(f.b)).sort((a, b) => a.partition - b.partition),
    slow.map((s) => norm(s.batch)).sort((a, b) => a.partition - b.partition),
  );
  for (const f of fast) assert.equal(f.p, f.b.partition);
});

test("RawEncoder: malformed input is counted, never thrown", () => {
  const enc = new RawEncoder({ node: "n", partitions: 4, monoToWallOffsetNs: 0n, maxBatchBytes: 1 << 20 },
    new RawBatcher({ node: "n", probeId: "p", partition: () => 0, toWall: (t) => t, processes: new ProcessCache(), maxBatchBytes: 1 << 20 }));
  const bad = frame(data(1n, 0n, Buffer.from("abc"), 3, 1, 1n));
  bad.writeUInt32LE(1 << 30, 0);
  assert.equal(enc.encode(bad).messages.length, 0);
  assert.equal(enc.decodeStats.errors, 1);
  for (let n = 0; n < 100; n++) enc.encode(Buffer.from(Array.from({ length: n * 3 }, () => (Math.random() * 256) | 0)));
});

test("RawEncoder with an Http1Trimmer: a body becomes a stated gap, seq and timestamp of every piece exact", () => {
  const key = (0x123456n << 40n) | 0x1_0000_0005n; // a counter above 32 bits
  const head = Buffer.from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n");
  const resp = Buffer.concat([head, Buffer.alloc(4096, 0x61), Buffer.from("\r\n0\r\n\r\n")]);
  const req = Buffer.from("GET /x HTTP/1.1\r\n\r\n");
  const seq0 = 2n ** 32n - 10n; // the pieces' seq carry into the high word
  const buf = Buffer.concat([
    frame(data(key, 5n, req, req.length, 1, 100n)),
    frame(data(key, seq0, resp, resp.length, 2, 200n)),
  ]);
  const trimmer = new Http1Trimmer();
  const enc = new RawEncoder({ node: "n", partitions: 4, monoToWallOffsetNs: 1000n, maxBatchBytes: 1 << 20, trimmer },
    new RawBatcher({ node: "n", probeId: "p", partition: () => 0, toWall: (t) => t, processes: new ProcessCache(), maxBatchBytes: 1 << 20 }));
  const r = enc.encode(buf);
  assert.equal(r.events, 3, "the request, the head + gap, the tail");
  const data2 = r.messages.flatMap((m) => fromBinary(RawBatchSchema, m.data).data).filter((d) => d.direction === 2);
  assert.deepEqual(data2.map((d) => [d.seq, Buffer.from(d.payload).toString("latin1"), d.originalLength, d.timestampNs, d.connKey]), [
    [seq0, head.toString("latin1"), head.length + 4096, 1200n, key],
    [seq0 + BigInt(head.length + 4096), "\r\n0\r\n\r\n", 7, 1200n, key],
  ]);
  assert.equal(trimmer.stats.trimmed_bytes, 4096);
  // a close forgets the connection
  const close = rec(WS_EV_CLOSE, key, CONN.size, 300n);
  enc.encode(frame(close));
  assert.equal(trimmer.size, 0);
});

test("RawEncoder: a message without connection events or drops has a hand-written header equal to protobuf-es's", () => {
  const mk = () => new RawBatcher({ node: "node-ä", probeId: "probe-1", partition: (key) => connPartition("node-ä", key, 16), toWall: (t) => t, processes: new ProcessCache({ procRoot: "/nonexistent" }), maxBatchBytes: 1 << 20 });
  const enc = new RawEncoder({ node: "node-ä", partitions: 16, monoToWallOffsetNs: 0n, maxBatchBytes: 1 << 20 }, mk());
  const slow = mk();
  for (let round = 0; round < 3; round++) {
    const recs: Buffer[] = [];
    for (let k = 1n; k < 40n; k++) recs.push(data(k, 0n, Buffer.from("x"), 1, 1, 5n));
    const buf = Buffer.concat(recs.map(frame));
    if (round === 1) {
      enc["batcher"].addDrops({ "kernel.ringbuf_full": 3 }); // drops pending: the full path reports them
      slow.addDrops({ "kernel.ringbuf_full": 3 });
    }
    const fast = enc.encode(buf).messages.map((m) => fromBinary(RawBatchSchema, m.data));
    const ref = slow.build(decodeBatch(buf)).map((b) => b.batch);
    const norm = (b: (typeof ref)[number]) => [b.node, b.probeId, b.partition, b.batchSeq, b.data.length, Object.entries(b.drops)];
    assert.deepEqual(fast.map(norm).sort(), ref.map(norm).sort(), `round ${round}`);
    assert.ok(fast.length > 8);
  }
});

test("RawEncoder with holdMs: a partition's data waits for later batches until its oldest event is holdMs old", () => {
  const now = 5_000_000_000_000; // a fixed clock: no timing in this test
  const young = BigInt(now); // kernel time of events that just happened
  const enc = new RawEncoder({ node: "n", partitions: 4, monoToWallOffsetNs: 0n, maxBatchBytes: 1 << 20, holdMs: 50, monoNow: () => now },
    new RawBatcher({ node: "n", probeId: "p", partition: () => 0, toWall: (t) => t, processes: new ProcessCache({ procRoot: "/nonexistent" }), maxBatchBytes: 1 << 20 }));
  const keys = [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n];
  const batch = (ts: bigint, seq: bigint) => Buffer.concat(keys.map((k) => frame(data(k, seq, Buffer.from("abc"), 3, 1, ts))));
  assert.equal(enc.encode(batch(young, 0n)).messages.length, 0, "young data waits");
  assert.equal(enc.encode(batch(young, 3n)).messages.length, 0);
  assert.equal(enc.flushDue(false, now + 10e6).length, 0, "10 ms later: still young");
  const due = enc.flushDue(false, now + 50e6);
  const parts = new Set(keys.map((k) => new PartitionHash("n", 4).of(Number(k), 0)));
  assert.equal(due.length, parts.size, "one message per partition for both batches");
  const evs = due.flatMap((m) => fromBinary(RawBatchSchema, m.data).data);
  assert.equal(evs.length, 2 * keys.length);
  for (const k of keys) assert.deepEqual(evs.filter((e) => e.connKey === k).map((e) => e.seq), [0n, 3n], "in order");
  assert.equal(enc.flushDue(true).length, 0, "nothing left");
  // old data (the native batch itself waited) goes out at once; a connection event cuts at once
  assert.equal(enc.encode(batch(young - 60_000_000n, 6n)).messages.length, parts.size);
  enc.encode(batch(young, 9n));
  const withOpen = enc.encode(frame(open(1n))).messages;
  assert.equal(withOpen.length, 1, "the open's partition only");
  assert.equal(fromBinary(RawBatchSchema, withOpen[0].data).data.length, keys.filter((k) => new PartitionHash("n", 4).of(Number(k), 0) === withOpen[0].partition).length, "its waiting data goes with it");
  assert.equal(enc.flushDue(true).length, parts.size - 1, "the rest at stop");
});

test("RawEncoder with holdMs: a connection turning TLS sends its held ciphertext first, then the open with the plaintext", () => {
  const now = 5_000_000_000_000;
  const young = BigInt(now);
  const enc = new RawEncoder({ node: "n", partitions: 4, monoToWallOffsetNs: 0n, maxBatchBytes: 1 << 20, holdMs: 50, monoNow: () => now },
    new RawBatcher({ node: "n", probeId: "p", partition: () => 0, toWall: (t) => t, processes: new ProcessCache({ procRoot: "/nonexistent" }), maxBatchBytes: 1 << 20 }));
  const key = 7n;
  assert.equal(enc.encode(Buffer.concat([frame(open(key)), frame(data(key, 0n, Buffer.from("\x16\x03\x01hello"), 8, 1, young))])).messages.length, 1);
  assert.equal(enc.encode(frame(data(key, 8n, Buffer.from("\x16\x03\x03more"), 7, 1, young))).messages.length, 0, "handshake held");
  const tlsOpen = open(key);
  tlsOpen[CONN.flags] = WS_CONN_F_TLS;
  tlsOpen[CONN.tls_lib] = 1;
  const out = enc.encode(Buffer.concat([frame(tlsOpen), frame(data(key, 0n, Buffer.from("GET / HTTP/1.1\r\n\r\n"), 18, 1, young))])).messages;
  const msgs = [...out, ...enc.flushDue(true)].map((m) => fromBinary(RawBatchSchema, m.data));
  assert.equal(msgs.length, 2);
  assert.deepEqual(msgs[0]!.conns, [], "the held ciphertext goes alone, first");
  assert.deepEqual(msgs[0]!.data.map((d) => d.seq), [8n]);
  assert.deepEqual(msgs[1]!.conns.map((c) => [c.tls, c.tlsLibrary]), [[true, "openssl"]]);
  assert.deepEqual(msgs[1]!.data.map((d) => Buffer.from(d.payload).toString()), ["GET / HTTP/1.1\r\n\r\n"], "after the TLS open: plaintext only");
});
