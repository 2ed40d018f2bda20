import { test } from "node:test";
import { createHash } from "node:crypto";
import assert from "node:assert/strict";
import { create, fromBinary, isFieldSet, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { RawBatchSchema, ConnEventSchema, DataEventSchema, ProcessInfoSchema, ConnKind, RawBatchReader, RawBatchField, RawBatchTag, DataEventTag, resolvedData, coveredFields, type ConnEvent, type DataEvent } from "@wirescope/wire";
import { RAW_FIELDS, RawEncoder, monoToWallOffset, type RawEncoderOptions } from "./raw-encoder.js";
import { ProcessCache } from "./process-info.js";
import { connPartition } from "./partition.js";
import { decodeBatch } from "./decode.js";
import type { ConnRecord, DataRecord } from "./events.js";
import { PartitionHash } from "./partition.js";
import { HDR, DATA, CONN, WS_EV_DATA, WS_EV_OPEN, WS_EV_CLOSE, WS_CONN_F_TLS, WS_CONN_F_INFERRED, WS_CONN_F_SHED, WS_CONN_F_REOPEN, WS_DATA_F_ANSWER } from "./gen/layout.js";
import { Http1Trimmer } from "./http1-trim.js";
import { eventRecord, frameRecord } from "./test-support/ring-records.js";

/** A record of this file's process (tgid 4321, tid 4322). */
const rec = (type: number, key: bigint, size: number, tsNs: bigint) => eventRecord(type, key, size, { tgid: 4321, tid: 4322, tsNs });

function data(key: bigint, seq: bigint, payload: Buffer, original: number, dir: number, ts: bigint): Buffer {
  const b = rec(WS_EV_DATA, key, DATA.headerSize + payload.length, ts);
  b.writeBigUInt64LE(seq, DATA.seq);
  b.writeUInt32LE(original, DATA.original_length);
  b.writeUInt32LE(payload.length, DATA.len);
  b[DATA.direction] = dir;
  payload.copy(b, DATA.payload);
  return b;
}

function open(key: bigint, type = WS_EV_OPEN, tgid = 4321): Buffer {
  const b = rec(type, key, CONN.size, 5n);
  b.writeUInt32LE(tgid, HDR.tgid);
  b.writeUInt16LE(2, CONN.family);
  b.set([10, 1, 2, 3], CONN.laddr);
  b.set([192, 168, 0, 9], CONN.raddr);
  b.writeUInt16LE(1234, CONN.lport);
  b.writeUInt16LE(80, CONN.rport);
  b[CONN.role] = 1;
  b.write("curl", CONN.comm);
  return b;
}

const encoder = (o: Partial<RawEncoderOptions> = {}, onConn?: (c: ConnRecord) => void) =>
  new RawEncoder({ node: "n", probeId: "p", partitions: 4, processes: new ProcessCache({ procRoot: "/nonexistent" }), monoToWallOffsetNs: 0n, maxBatchBytes: 1 << 20, ...o }, onConn);

// The reference: protobuf-es objects built from the decoded events, field by field as the
// contract in docs/probe.md states them.
function refConn(c: ConnRecord, processes: ProcessCache, offset: bigint): ConnEvent {
  const p = processes.get(c.tgid, c.comm);
  const proc = create(ProcessInfoSchema, {
    pid: c.tgid, name: p.name || c.comm, exe: p.exe, cmdline: p.cmdline, containerId: p.containerId,
    pod: p.pod, namespace: p.namespace, container: p.container, workload: p.workload,
  });
  return create(ConnEventSchema, {
    connKey: c.connKey, kind: c.kind === "open" ? ConnKind.OPEN : ConnKind.CLOSE, role: c.role,
    localAddress: c.localAddress, localPort: c.localPort, remoteAddress: c.remoteAddress, remotePort: c.remotePort,
    tid: c.tid,
    timestampNs: c.tsMono + offset, process: proc, inferred: c.inferred, tls: c.tls, tlsLibrary: c.tlsLibrary,
    observedFraction: c.observedFraction !== undefined && c.observedFraction < 1 ? c.observedFraction : 0, shed: c.shed ?? "",
  });
}

function refData(d: DataRecord, offset: bigint): DataEvent {
  return create(DataEventSchema, { connKey: d.connKey, direction: d.direction, seq: d.seq, timestampNs: d.tsMono + offset, tid: d.tid, payload: d.payload, originalLength: d.originalLength });
}

test("RawEncoder: the bytes decode to what protobuf-es objects built from the decoded events hold", () => {
  const base = 0xabcdefn << 40n;
  const keys = [base | 1n, base | 2n, base | 300000n, 1n];
  const offset = 1_795_000_000_000_000_000n;
  const recs: Buffer[] = [];
  // this process as the owner of two connections: exe and cmdline come from /proc
  keys.forEach((k, i) => recs.push(open(k, WS_EV_OPEN, i < 2 ? process.pid : 4321)));
  let i = 0;
  for (const k of keys) {
    recs.push(data(k, 0n, Buffer.from("hello"), 5, 1, 123_456_789_012n + BigInt(i++)));
    recs.push(data(k, 2n ** 33n + 7n, Buffer.alloc(300, 7), 1000, 2, 0xffff_ffffn)); // carry into the high word
    recs.push(data(k, 12n, Buffer.alloc(0), 70000, 1, 1n)); // a pure gap
  }
  const sampled = open(keys[0]!);
  sampled.writeUInt16LE(0x2000, CONN.sample_level); // observed fraction 1/4
  sampled[CONN.flags] = WS_CONN_F_TLS;
  sampled[CONN.tls_lib] = 1;
  recs.push(sampled);
  const shed = open(keys[1]!, WS_EV_CLOSE);
  shed[CONN.flags] = 4; // WS_CONN_F_SHED
  shed[CONN.shed] = 1;
  recs.push(shed);
  recs.push(open(keys[2]!, WS_EV_CLOSE));
  const buf = Buffer.concat(recs.map(frameRecord));
  const processes = new ProcessCache();
  const seen: ConnRecord[] = [];
  const enc = encoder({ partitions: 16, processes, monoToWallOffsetNs: offset }, (c) => seen.push(c));
  const r = enc.encode(buf);
  assert.equal(r.events, keys.length * 4 + 3);
  assert.equal(r.bytes, keys.length * 305);
  assert.equal(enc.decodeStats.errors, 0);
  assert.equal(enc.decodeStats.records, keys.length * 4 + 3);
  const msgs = r.messages.map((m) => ({ p: m.partition, b: fromBinary(RawBatchSchema, m.data) }));
  const decoded = decodeBatch(buf);
  assert.deepEqual(seen, decoded.conns, "every connection event, in order");
  const part = (k: bigint) => connPartition("n", k, 16);
  // a partition's messages in order hold its events in order (the TLS open cut its partition once)
  assert.equal(msgs.length, new Set(keys.map(part)).size + 1);
  for (const p of new Set(msgs.map((m) => m.p))) {
    const mine = msgs.filter((m) => m.p === p).map((m) => m.b);
    for (const b of mine) assert.deepEqual([b.partition, b.node, b.probeId], [p, "n", "p"]);
    assert.deepEqual(mine.flatMap((b) => b.conns), decoded.conns.filter((c) => part(c.connKey) === p).map((c) => refConn(c, processes, offset)));
    const hex = (d: DataEvent) => ({ ...d, payload: Buffer.from(d.payload).toString("hex") });
    assert.deepEqual(mine.flatMap(resolvedData).map(hex), decoded.data.filter((d) => part(d.connKey) === p).map((d) => hex(refData(d, offset))));
  }
  assert.equal(msgs.reduce((n, m) => n + m.b.conns.length, 0), decoded.conns.length);
  const own = msgs.flatMap((m) => m.b.conns).find((c) => c.process?.pid === process.pid)!;
  assert.equal(own.process?.exe, process.execPath, "the process read from /proc");
  assert.ok(own.process?.cmdline.includes("raw-encoder.test"));
  // each ConnEvent's bytes are protobuf-es's own (same fields, same order)
  const one = encoder({ processes, monoToWallOffsetNs: offset });
  for (const c of decoded.conns) {
    const m = one.encodeConns([c]);
    const ev = fromBinary(RawBatchSchema, m[0]!.data).conns[0]!;
    assert.deepEqual(Buffer.from(toBinary(ConnEventSchema, ev)), Buffer.from(toBinary(ConnEventSchema, refConn(c, processes, offset))));
  }
});

test("RawEncoder: RAW_FIELDS names every field of proto/, and each one it says is written is set by some event", () => {
  // events with every value non-zero, a sampled TLS open and a shed close among them
  const k = (0xabn << 40n) | 77n;
  const opened = open(k);
  opened.writeUInt16LE(0x2000, CONN.sample_level);
  opened[CONN.flags] = WS_CONN_F_TLS | WS_CONN_F_INFERRED;
  opened[CONN.tls_lib] = 1;
  const shed = open(k, WS_EV_CLOSE);
  shed[CONN.flags] = WS_CONN_F_SHED;
  shed[CONN.shed] = 1;
  const processes = new ProcessCache({ procRoot: "/nonexistent" });
  // every process field known, as the cache holds them once /proc and the pod are read
  Object.assign(processes.get(4321, "curl"), { exe: "/usr/bin/curl", cmdline: "curl x", containerId: "c".repeat(64), pod: "web-1", namespace: "shop", container: "web", workload: "web" });
  const enc = encoder({ processes, monoToWallOffsetNs: 1n << 60n, partitions: 1 });
  enc.addDrops({ ringbuf_full: 3 });
  // an answer (served), then a message after it (served_before)
  const answer = data(k, 5n, Buffer.from("abc"), 900, 1, 1234n);
  answer[DATA.flags] = WS_DATA_F_ANSWER;
  const r = enc.encode(Buffer.concat([opened, answer, shed].map(frameRecord)));
  const first = [...r.messages, ...enc.flushDue(true)];
  const later = [...enc.encode(frameRecord(data(k, 905n, Buffer.from("d"), 1, 1, 1300n))).messages, ...enc.flushDue(true)];
  const msgs = [...first, ...later].map((m) => fromBinary(RawBatchSchema, m.data));
  assert.ok(msgs.length > 0);
  const set = new Map<string, Set<string>>();
  const mark = (schema: DescMessage, m: object | undefined) => {
    for (const f of schema.fields) if (m && isFieldSet(m as never, f)) (set.get(schema.name) ?? set.set(schema.name, new Set()).get(schema.name)!).add(f.localName);
  };
  // partition 0 is the proto3 default: a message of partition 0 leaves it unset, so count it as stated
  for (const b of msgs) {
    mark(RawBatchSchema, { ...b, partition: 1 });
    for (const c of b.conns) (mark(ConnEventSchema, c), mark(ProcessInfoSchema, c.process));
    for (const d of b.data) mark(DataEventSchema, d);
  }
  for (const [name, schema] of [["RawBatch", RawBatchSchema], ["ConnEvent", ConnEventSchema], ["DataEvent", DataEventSchema], ["ProcessInfo", ProcessInfoSchema]] as const) {
    assert.deepEqual(Object.keys(RAW_FIELDS[name]).sort(), schema.fields.map((f) => f.localName).sort(), name);
    assert.deepEqual([...(set.get(name) ?? [])].sort(), coveredFields(RAW_FIELDS[name]).sort(), `${name}: the fields written`);
  }
});

test("RawEncoder: a process's fields are encoded once and follow what the cache learns later", () => {
  const processes = new ProcessCache({ procRoot: "/nonexistent" });
  const enc = encoder({ processes });
  const k8s = processes.get(4321, "curl");
  const first = fromBinary(RawBatchSchema, enc.encodeConns([decodeBatch(frameRecord(open(1n))).conns[0]!])[0]!.data).conns[0]!;
  assert.equal(first.process?.name, "curl");
  assert.equal(first.process?.pod, "");
  Object.assign(k8s, { pod: "web-1", namespace: "shop", containerId: "c".repeat(64) }); // as ProcessCache does when the pod is resolved
  const later = fromBinary(RawBatchSchema, enc.encodeConns([decodeBatch(frameRecord(open(2n))).conns[0]!])[0]!.data).conns[0]!;
  assert.deepEqual([later.process?.pod, later.process?.namespace, later.process?.containerId], ["web-1", "shop", "c".repeat(64)]);
});

test("RawEncoder.encodeEvents (a replay's decoded events) gives what encode gives for the same native batch", () => {
  const recs = [open(5n), data(5n, 0n, Buffer.from("GET / HTTP/1.1\r\n\r\n"), 18, 1, 77n), data(5n, 0n, Buffer.from("HTTP/1.1 200 OK\r\n\r\n"), 19, 2, 78n), open(5n, WS_EV_CLOSE)];
  const buf = Buffer.concat(recs.map(frameRecord));
  const fast = encoder({ monoToWallOffsetNs: 9n }).encode(buf).messages.map((m) => fromBinary(RawBatchSchema, m.data));
  const slow = encoder({ monoToWallOffsetNs: 9n }).encodeEvents(decodeBatch(buf)).map((m) => fromBinary(RawBatchSchema, m.data));
  assert.deepEqual(slow, fast);
  assert.equal(fast[0]!.conns.length, 2);
  assert.equal(fast[0]!.data.length, 2);
});

test("RawEncoder: malformed input is counted, never thrown", () => {
  const enc = encoder();
  const bad = frameRecord(data(1n, 0n, Buffer.from("abc"), 3, 1, 1n));
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
    frameRecord(data(key, 5n, req, req.length, 1, 100n)),
    frameRecord(data(key, seq0, resp, resp.length, 2, 200n)),
  ]);
  const trimmer = new Http1Trimmer();
  const enc = encoder({ monoToWallOffsetNs: 1000n, trimmer });
  const r = enc.encode(buf);
  assert.equal(r.events, 3, "the request, the head + gap, the tail");
  const data2 = r.messages.flatMap((m) => resolvedData(fromBinary(RawBatchSchema, m.data))).filter((d) => d.direction === 2);
  assert.deepEqual(data2.map((d) => [d.seq, Buffer.from(d.payload).toString("latin1"), d.originalLength, d.timestampNs, d.connKey]), [
    [seq0, head.toString("latin1"), head.length + 4096, 1200n, key],
    [seq0 + BigInt(head.length + 4096), "\r\n0\r\n\r\n", 7, 1200n, key],
  ]);
  assert.equal(trimmer.stats.trimmed_bytes, 4096);
  // a close forgets the connection
  const close = rec(WS_EV_CLOSE, key, CONN.size, 300n);
  enc.encode(frameRecord(close));
  assert.equal(trimmer.size, 0);
});

test("RawEncoder: the header (identity, partition, drops once, batch_seq per partition) and size cuts", () => {
  const enc = encoder({ node: "node-ä", probeId: "probe-1", partitions: 16, maxBatchBytes: 2000 });
  const seqs = new Map<number, bigint[]>();
  const drops: Record<string, bigint>[] = [];
  for (let round = 0; round < 3; round++) {
    const recs: Buffer[] = [];
    for (let k = 1n; k < 40n; k++) recs.push(data(k, 0n, Buffer.alloc(200, 1), 200, 1, 5n));
    if (round === 1) enc.addDrops({ "kernel.ringbuf_full": 3, "user.js_behind": 2 ** 33, none: 0 });
    const out = enc.encode(Buffer.concat(recs.map(frameRecord))).messages;
    assert.ok(out.length > 8);
    let events = 0;
    for (const m of out) {
      const b = fromBinary(RawBatchSchema, m.data);
      // byte for byte what protobuf-es writes for the same header
      const header = create(RawBatchSchema, { node: "node-ä", probeId: "probe-1", partition: m.partition, drops: b.drops, batchSeq: b.batchSeq, dataTimeBaseNs: b.dataTimeBaseNs, dataKeyBase: b.dataKeyBase });
      assert.deepEqual(Buffer.from(m.data.subarray(0, toBinary(RawBatchSchema, header).length)), Buffer.from(toBinary(RawBatchSchema, header)));
      assert.ok(m.data.length <= 2000 + 300, "cut by size");
      assert.equal(m.events, b.data.length);
      events += b.data.length;
      seqs.set(m.partition, [...(seqs.get(m.partition) ?? []), b.batchSeq]);
      if (Object.keys(b.drops).length) drops.push(b.drops);
    }
    assert.equal(events, 39);
  }
  for (const s of seqs.values()) assert.deepEqual(s, s.map((_, i) => BigInt(i + 1)), "batch_seq counts 1, 2, 3... per partition");
  assert.deepEqual(drops, [{ "kernel.ringbuf_full": 3n, "user.js_behind": 2n ** 33n }], "drops on one message, once");
});

test("RawEncoder: each message states the requests served in it (answers flagged by the kernel) and in the messages before it, per partition", () => {
  const enc = encoder();
  const ans = (k: bigint, seq: bigint, answer: boolean) => {
    const b = data(k, seq, Buffer.from("HTTP/1.1 200 OK\r\n\r\n"), 19, 1, 1000n);
    b[DATA.flags] = answer ? WS_DATA_F_ANSWER : 0;
    return frameRecord(b);
  };
  const parts = new PartitionHash("n", 4);
  const k1 = 1n;
  const k2 = [2n, 3n, 4n, 5n, 6n].find((k) => parts.of(Number(k), 0) !== parts.of(1, 0))!;
  const read = (m: { data: Uint8Array }) => fromBinary(RawBatchSchema, m.data);
  const byPart = (ms: { partition: number; data: Uint8Array }[], k: bigint) => ms.filter((m) => m.partition === parts.of(Number(k), 0)).map(read);
  // three answers and a continuation (not flagged) on k1, none on k2
  let ms = enc.encode(Buffer.concat([ans(k1, 0n, true), ans(k1, 19n, false), ans(k1, 38n, true), ans(k1, 57n, true), ans(k2, 0n, false)])).messages;
  let [m1] = byPart(ms, k1);
  assert.equal(m1!.served, 3);
  assert.equal(m1!.servedBefore, 0n);
  assert.equal(byPart(ms, k2)[0]!.served, 0, "a partition that served nothing states nothing");
  ms = enc.encode(Buffer.concat([ans(k1, 76n, false), ans(k2, 19n, true)])).messages;
  [m1] = byPart(ms, k1);
  assert.equal(m1!.served, 0);
  assert.equal(m1!.servedBefore, 3n, "a message without answers still states the count before it");
  assert.equal(byPart(ms, k2)[0]!.served, 1);
  ms = enc.encode(ans(k1, 95n, true)).messages;
  assert.deepEqual([byPart(ms, k1)[0]!.servedBefore, byPart(ms, k1)[0]!.served], [3n, 1]);
  // the trimmer's pieces of one event count once
  const trimmed = encoder({ trimmer: new Http1Trimmer() });
  const req = Buffer.from("GET / HTTP/1.1\r\n\r\n");
  const body = Buffer.concat([Buffer.from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n"), Buffer.alloc(4096, 120), Buffer.from("\r\n0\r\n\r\n")]);
  const b = data(k1, 0n, body, body.length, 2, 1000n);
  b[DATA.flags] = WS_DATA_F_ANSWER;
  const out = trimmed.encode(Buffer.concat([frameRecord(data(k1, 0n, req, req.length, 1, 900n)), frameRecord(b)]));
  assert.equal(out.events, 3, "the request, and the answer in two pieces (head + gap, tail)");
  assert.equal(out.messages.map(read).reduce((n, m) => n + m.served, 0), 1);
});

test("RawEncoder with holdMs: a partition's data waits for later batches until its oldest event is holdMs old", () => {
  const now = 5_000_000_000_000; // a fixed clock: no timing in this test
  const young = BigInt(now); // kernel time of events that just happened
  const enc = encoder({ holdMs: 50, monoNow: () => now });
  const keys = [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n];
  const batch = (ts: bigint, seq: bigint) => Buffer.concat(keys.map((k) => frameRecord(data(k, seq, Buffer.from("abc"), 3, 1, ts))));
  assert.equal(enc.encode(batch(young, 0n)).messages.length, 0, "young data waits");
  assert.equal(enc.encode(batch(young, 3n)).messages.length, 0);
  assert.equal(enc.flushDue(false, now + 10e6).length, 0, "10 ms later: still young");
  const due = enc.flushDue(false, now + 50e6);
  const parts = new Set(keys.map((k) => new PartitionHash("n", 4).of(Number(k), 0)));
  assert.equal(due.length, parts.size, "one message per partition for both batches");
  const evs = due.flatMap((m) => resolvedData(fromBinary(RawBatchSchema, m.data)));
  assert.equal(evs.length, 2 * keys.length);
  for (const k of keys) assert.deepEqual(evs.filter((e) => e.connKey === k).map((e) => e.seq), [0n, 3n], "in order");
  assert.equal(enc.flushDue(true).length, 0, "nothing left");
  // old data (the native batch itself waited) goes out at once
  assert.equal(enc.encode(batch(young - 60_000_000n, 6n)).messages.length, parts.size);
  // connection events wait with the data of their partition (a new connection does not cut)
  enc.encode(batch(young, 9n));
  assert.equal(enc.encode(frameRecord(open(1n))).messages.length, 0, "an open waits too");
  const p1 = new PartitionHash("n", 4).of(1, 0);
  const at = enc.flushDue(true).map((m) => ({ p: m.partition, b: fromBinary(RawBatchSchema, m.data) }));
  assert.equal(at.length, parts.size, "one message per partition at stop");
  const withOpen = at.find((m) => m.p === p1)!.b;
  assert.equal(withOpen.conns.length, 1);
  assert.equal(withOpen.data.length, keys.filter((k) => new PartitionHash("n", 4).of(Number(k), 0) === p1).length, "with its partition's data");
});

test("RawEncoder with holdMs: the partitions come due together, one cut per hold period however many connections are spread over them", () => {
  const base = 5_000_000_000_000;
  let clock = base;
  const enc = encoder({ holdMs: 50, monoNow: () => clock });
  const rec = (k: bigint, ts: number) => frameRecord(data(k, 0n, Buffer.from("abc"), 3, 1, BigInt(ts)));
  // a new connection every 0.25 ms, each event encoded as it happens (one native batch each): the
  // partitions' first events are 0.25 ms apart, so ages of their own made each come due apart
  const parts = new Set<number>();
  let cuts = 0;
  let messages = 0;
  for (let i = 0; i < 400; i++) {
    clock = base + i * 0.25e6;
    const key = BigInt(i + 1);
    parts.add(new PartitionHash("n", 4).of(Number(key), 0));
    const out = enc.encode(rec(key, clock)).messages;
    if (out.length) cuts++;
    messages += out.length;
  }
  assert.equal(cuts, 1, "one cut in 100 ms: when the oldest event is 50 ms old, every partition at once");
  assert.equal(messages, parts.size, "one message per partition");
  assert.equal(enc.nextDueMs(), 0.5, "the oldest left (event 201, 49.5 ms old) is due in 0.5 ms");
  assert.equal(enc.flushDue().length, 0, "not before");
  assert.equal(enc.flushDue(false, clock + 0.5e6).length, parts.size, "then all together again");
});

test("RawEncoder.nextDueMs: -1 with nothing held (the ager stays unarmed), else the time until the oldest event is holdMs old", () => {
  const now = 5_000_000_000_000;
  const enc = encoder({ holdMs: 50, monoNow: () => now });
  assert.equal(enc.nextDueMs(), -1, "an idle encoder needs no wake-up");
  const rec = (k: bigint, ts: bigint) => frameRecord(data(k, 0n, Buffer.from("abc"), 3, 1, ts));
  enc.encode(rec(1n, BigInt(now - 20_000_000)));
  enc.encode(rec(2n, BigInt(now - 5_000_000)));
  assert.equal(enc.nextDueMs(), 30, "the oldest waiting event (20 ms old) is due in 30 ms");
  assert.equal(enc.nextDueMs(now + 40e6), 0, "past due: at once");
  enc.flushDue(true);
  assert.equal(enc.nextDueMs(), -1, "everything sent: unarmed again");
});

test("RawEncoder with holdMs: a connection turning TLS sends its held ciphertext first, then the open with the plaintext", () => {
  const now = 5_000_000_000_000;
  const young = BigInt(now);
  const enc = encoder({ holdMs: 50, monoNow: () => now });
  const key = 7n;
  assert.equal(enc.encode(Buffer.concat([frameRecord(open(key)), frameRecord(data(key, 0n, Buffer.from("\x16\x03\x01hello"), 8, 1, young))])).messages.length, 1, "the open is old: due at once");
  assert.equal(enc.encode(frameRecord(data(key, 8n, Buffer.from("\x16\x03\x03more"), 7, 1, young))).messages.length, 0, "handshake held");
  const tlsOpen = open(key);
  tlsOpen[CONN.flags] = WS_CONN_F_TLS;
  tlsOpen[CONN.tls_lib] = 1;
  const out = enc.encode(Buffer.concat([frameRecord(tlsOpen), frameRecord(data(key, 0n, Buffer.from("GET / HTTP/1.1\r\n\r\n"), 18, 1, young))])).messages;
  const msgs = [...out, ...enc.flushDue(true)].map((m) => fromBinary(RawBatchSchema, m.data));
  assert.equal(msgs.length, 2);
  assert.deepEqual(msgs[0]!.conns, [], "the held ciphertext goes alone, first");
  assert.deepEqual(msgs[0]!.data.map((d) => d.seq), [8n]);
  assert.deepEqual(msgs[1]!.conns.map((c) => [c.tls, c.tlsLibrary]), [[true, "openssl"]]);
  assert.deepEqual(msgs[1]!.data.map((d) => Buffer.from(d.payload).toString()), ["GET / HTTP/1.1\r\n\r\n"], "after the TLS open: plaintext only");
});

test("RawEncoder with holdMs: a connection decided again (WS_CONN_F_REOPEN) cuts its partition first, so its old stream's tail and shed close never share a message with the new stream's open", () => {
  // The parser applies a message's opens, then its data, then its closes: in one message, the
  // reopen would take the old stream's last response (seq 24) as its first bytes and the shed
  // close would end the new stream (measured at saturation under sampling: request gaps and
  // responses dropped as unrequested after every such flip).
  const now = 5_000_000_000_000;
  const young = BigInt(now);
  const enc = encoder({ holdMs: 50, monoNow: () => now });
  const key = 9n;
  const at = (b: Buffer) => (b.writeBigUInt64LE(young, HDR.ts_ns), b);
  const shed = at(open(key, WS_EV_CLOSE));
  shed[CONN.flags] = WS_CONN_F_SHED;
  shed[CONN.shed] = 1;
  const reopen = at(open(key));
  reopen[CONN.flags] = WS_CONN_F_REOPEN;
  const old = [at(open(key)), data(key, 0n, Buffer.from("GET /a HTTP/1.1\r\n\r\n"), 20, 1, young), data(key, 0n, Buffer.from("HTTP/1.1 200 OK\r\n\r\n"), 19, 2, young)];
  const fresh = [reopen, data(key, 0n, Buffer.from("GET /b HTTP/1.1\r\n\r\n"), 20, 1, young)];
  const out = enc.encode(Buffer.concat([...old, shed, ...fresh].map(frameRecord))).messages;
  assert.equal(out.length, 1, "the reopen cut the partition: the old stream and its close went out");
  const msgs = [...out, ...enc.flushDue(true)].map((m) => fromBinary(RawBatchSchema, m.data));
  assert.equal(msgs.length, 2);
  assert.deepEqual(msgs[0]!.conns.map((c) => [c.kind, c.shed]), [[ConnKind.OPEN, ""], [ConnKind.CLOSE, "budget"]]);
  assert.deepEqual(msgs[0]!.data.map((d) => Buffer.from(d.payload).toString().split("\r")[0]), ["GET /a HTTP/1.1", "HTTP/1.1 200 OK"]);
  assert.deepEqual(msgs[1]!.conns.map((c) => c.kind), [ConnKind.OPEN], "the new stream's open leads the next message");
  assert.deepEqual(msgs[1]!.data.map((d) => Buffer.from(d.payload).toString().split("\r")[0]), ["GET /b HTTP/1.1"]);
  // a new connection's open (no flag) does not cut: opens at 1,000 new connections a second share messages
  const enc2 = encoder({ holdMs: 50, monoNow: () => now });
  const first = [at(open(11n)), data(11n, 0n, Buffer.from("x"), 1, 1, young)];
  assert.equal(enc2.encode(Buffer.concat([...first, at(open(12n))].map(frameRecord))).messages.length, 0, "held together");
});

test("monoToWallOffset: the wall clock now, to well under a millisecond (not Date.now()'s millisecond), the same at every call; a skew added as given", () => {
  const a = monoToWallOffset();
  // CLOCK_MONOTONIC plus the offset is the wall clock: within the millisecond Date.now() shows
  // around it, give or take 50 µs, at every reading
  for (let i = 0; i < 200; i++) {
    const h0 = process.hrtime.bigint();
    const t = BigInt(Date.now()) * 1_000_000n;
    const h1 = process.hrtime.bigint();
    assert.ok(h1 + a >= t - 50_000n && h0 + a < t + 1_050_000n, `reading ${i}: ${h0 + a} against the wall clock's ${t}`);
  }
  const b = monoToWallOffset();
  const skewed = monoToWallOffset(5_000_000_000n);
  const near = (x: bigint, y: bigint) => (x > y ? x - y : y - x) < 100_000n;
  assert.ok(near(a, b), `two readings ${a} and ${b} differ by less than 100 µs`);
  assert.ok(near(skewed - 5_000_000_000n, a), "the skew is added");
});

test("RawEncoder: data events relative to the message's bases (time, the key's high bits), nothing cut means no original_length; an event older than the slack or of other high key bits is exact too", () => {
  const high = 0xabcdefn << 40n; // a probe instance's random high key bits
  const keys = [high | 1n, high | 0x12345n, high | 0xff_ffff_ffffn];
  const t0 = 1_796_000_000_000_000_000n; // a wall clock in 2026, ns
  const recs: Buffer[] = [];
  let i = 0;
  for (const k of keys) for (let j = 0; j < 5; j++) recs.push(data(k, BigInt(j * 100), Buffer.alloc(100, 0x41), j === 4 ? 5000 : 100, 1 + (j % 2), t0 + BigInt(i++) * 1_000_000n));
  // a little out of order (within the 16.7 ms slack), far out of order (100 ms older), a key of other high bits
  recs.push(data(keys[0]!, 500n, Buffer.from("late"), 4, 1, t0 - 10_000_000n));
  recs.push(data(keys[0]!, 504n, Buffer.from("older"), 5, 1, t0 - 100_000_000n));
  recs.push(data(7n, 0n, Buffer.from("other"), 5, 1, t0));
  const enc = encoder({ partitions: 1 });
  const msgs = [...enc.encode(Buffer.concat(recs.map(frameRecord))).messages, ...enc.flushDue(true)];
  assert.equal(msgs.length, 1);
  const decoded = decodeBatch(Buffer.concat(recs.map(frameRecord))).data;
  const got = msgs.flatMap((m) => resolvedData(fromBinary(RawBatchSchema, m.data)));
  assert.deepEqual(got.map((d) => [d.connKey, d.seq, d.timestampNs, d.originalLength, d.payload.length]), decoded.map((d) => [d.connKey, d.seq, d.tsMono, d.originalLength, d.payload.length]));
  // the reader's columns say the same
  const rd = new RawBatchReader();
  const cols: unknown[] = [];
  for (const m of msgs) {
    assert.ok(rd.read(m.data), rd.error);
    for (let k = 0; k < rd.dataCount; k++) cols.push([rd.connKey(k), BigInt(rd.seq[k]!), rd.timestampNs(k), rd.originalLength[k], rd.payload(k).length]);
  }
  assert.deepEqual(cols, got.map((d) => [d.connKey, d.seq, d.timestampNs, d.originalLength, d.payload.length]));
  // on the wire: small offsets and keys, original_length only where a tail was cut
  const first = fromBinary(RawBatchSchema, msgs[0]!.data);
  assert.equal(first.dataKeyBase, high);
  assert.equal(first.dataTimeBaseNs, t0 - (1n << 24n));
  const regular = first.data.slice(0, 15);
  assert.ok(regular.every((d) => d.connKey < 1n << 40n && d.timestampNs < 1n << 28n));
  assert.deepEqual(first.data.map((d) => d.originalLength).filter(Boolean), [5000, 5000, 5000]);
  // framing per regular event (payload and its tag and length aside): was 36-38 bytes with these keys and times
  const only = toBinary(RawBatchSchema, create(RawBatchSchema, { ...first, data: regular }));
  const payload = regular.reduce((n, d) => n + d.payload.length + 2, 0);
  const header = toBinary(RawBatchSchema, create(RawBatchSchema, { ...first, data: [] })).length;
  const framing = (only.length - header - payload) / regular.length;
  assert.ok(framing <= 22, `${framing} bytes of framing per event`);
});

/**
 * Every message of a fixed set of events, through each way in (encode, encodeEvents,
 * encodeConns), with every field, 1-, 2- and 3-byte lengths, 10-byte varints (an event older than
 * the slack, a key of other high bits), trimmed pieces, drops, size cuts and a TLS cut.
 */
function everyWayIn(): Uint8Array[] {
  const processes = new ProcessCache({ procRoot: "/nonexistent" });
  Object.assign(processes.get(4321, "curl"), { exe: "/usr/bin/curl", cmdline: "curl -s http://é/".repeat(20), containerId: "c".repeat(64), pod: "web-1", namespace: "shop", container: "web", workload: "web" });
  const high = 0xabcdefn << 40n;
  const keys = [high | 1n, high | 0x12345n, high | 0xff_ffff_ffffn, 7n, (0x12n << 40n) | 9n];
  const t0 = 1_796_000_000_000_000_000n;
  const recs: Buffer[] = [];
  keys.forEach((k, i) => {
    const o = open(k, WS_EV_OPEN, i % 2 ? 4321 : 99);
    o[CONN.flags] = i === 1 ? WS_CONN_F_INFERRED : 0;
    o.writeUInt16LE(i === 2 ? 0x2000 : 0, CONN.sample_level);
    recs.push(o);
  });
  const head = Buffer.from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n");
  keys.forEach((k, i) => {
    recs.push(data(k, 0n, Buffer.from("GET /x HTTP/1.1\r\n\r\n"), 19, 1, t0 + BigInt(i) * 1000n));
    recs.push(data(k, 19n, Buffer.concat([head, Buffer.alloc(4096, 0x61), Buffer.from("\r\n0\r\n\r\n")]), head.length + 4103, 2, t0 + BigInt(i) * 1000n + 7n));
    recs.push(data(k, 2n ** 32n - 3n, Buffer.alloc(i * 9000, i), 70_000, 1 + (i % 2), 0xffff_ffffn + BigInt(i))); // an old event, 3-byte lengths
    recs.push(data(k, 12n, Buffer.alloc(0), 70_000, 1, t0 - 100_000_000n)); // a pure gap
  });
  const tls = open(keys[0]!);
  tls[CONN.flags] = WS_CONN_F_TLS;
  tls[CONN.tls_lib] = 1;
  recs.push(tls, data(keys[0]!, 0n, Buffer.from("plain"), 5, 1, t0));
  const shed = open(keys[1]!, WS_EV_CLOSE);
  shed[CONN.flags] = WS_CONN_F_SHED;
  shed[CONN.shed] = 1;
  recs.push(shed, open(keys[2]!, WS_EV_CLOSE));
  const buf = Buffer.concat(recs.map(frameRecord));
  const out: Uint8Array[] = [];
  for (const o of [{}, { trimmer: new Http1Trimmer() }, { maxBatchBytes: 3000 }, { holdMs: 50, monoNow: () => 5e12 }]) {
    const enc = encoder({ node: "node-ä", probeId: "probe-1", partitions: 8, processes, monoToWallOffsetNs: 1_795_000_000_000_000_000n, ...o });
    enc.addDrops({ "kernel.ringbuf_full": 3, "user.js_behind": 2 ** 33 });
    for (const m of enc.encode(buf).messages) out.push(m.data);
    enc.addDrops({ later: 1 });
    for (const m of enc.encodeEvents(decodeBatch(buf))) out.push(m.data);
    for (const m of enc.encodeConns(decodeBatch(buf).conns)) out.push(m.data);
    for (const m of enc.flushDue(true)) out.push(m.data);
  }
  return out;
}

test("RawEncoder: the bytes of every way in are what they were (sha-256 of the messages written with the encoder's own buffer, before WireWriter), each event canonical", () => {
  const msgs = everyWayIn();
  const h = createHash("sha256");
  for (const m of msgs) h.update(m);
  assert.deepEqual([msgs.length, msgs.reduce((n, m) => n + m.length, 0), h.digest("hex")], [82, 908_872, "534d80bcf60d9d949e92158bcc34867020c39124759f085bb72e95ed05a08621"]);
  // each ConnEvent and DataEvent as protobuf-es writes it (field order, shortest varints)
  const counts = { conns: 0, data: 0 };
  for (const m of msgs) {
    const r = new BinaryReader(m);
    while (r.pos < r.len) {
      const [no, wt] = r.tag();
      const schema = no === RawBatchField.conns ? ConnEventSchema : no === RawBatchField.data ? DataEventSchema : undefined;
      if (!schema) {
        r.skip(wt);
        continue;
      }
      const b = r.bytes();
      assert.deepEqual(Buffer.from(b), Buffer.from(toBinary(schema as DescMessage, fromBinary(schema as DescMessage, b))), `${schema.name} as protobuf-es writes it`);
      counts[schema === ConnEventSchema ? "conns" : "data"]++;
    }
  }
  assert.ok(counts.conns >= 40 && counts.data >= 80, JSON.stringify(counts));
});

test("RawEncoder: the tags a DataEvent is written with take one byte (the per-event path stores them as bytes)", () => {
  const tags = [RawBatchTag.data, DataEventTag.connKey, DataEventTag.direction, DataEventTag.seq, DataEventTag.timestampNs, DataEventTag.tid, DataEventTag.payload, DataEventTag.originalLength];
  for (const t of tags) assert.ok(t > 0 && t < 0x80, `tag ${t}`);
});

test("RawEncoder: a message that reports drops carries them (to report again if it is unheard); the next one reports none", () => {
  const enc = encoder({ partitions: 1 });
  enc.addDrops({ "kernel.ringbuf_full": 3, "user.js_behind": 1 });
  const k = 7n;
  const first = [...enc.encode(frameRecord(open(k))).messages, ...enc.flushDue(true)];
  const second = [...enc.encode(frameRecord(data(k, 1n, Buffer.from("x"), 1, 1, 10n))).messages, ...enc.flushDue(true)];
  assert.equal(first.length, 1);
  assert.deepEqual(Object.fromEntries(first[0]!.drops!), { "kernel.ringbuf_full": 3, "user.js_behind": 1 });
  assert.deepEqual(fromBinary(RawBatchSchema, first[0]!.data).drops, { "kernel.ringbuf_full": 3n, "user.js_behind": 1n });
  assert.ok(second.length >= 1 && second.every((m) => m.drops === undefined && Object.keys(fromBinary(RawBatchSchema, m.data).drops).length === 0));
});
