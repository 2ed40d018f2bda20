// Messages larger than what the decoder buffers (256 KiB), fed the way the host feeds them
// (chunks of up to 1 MiB): the stream must not hit the queue limit, and every record batch is
// counted past the buffered prefix (api/records.ts walks the whole message as it streams by), in
// memory that does not grow with the message.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PluginRegistry, Plugin } from "@wirescope/plugin-host";
import { findPlugin } from "../../test-support/plugins.js";
import { pluginCounters, runChunks, type Chunk } from "../../test-support/vectors.js";
import { W, request, response, recordBatch } from "./wire.js";

const MiB = 1 << 20;

function registry(): { reg: PluginRegistry; plugin: Plugin } {
  const reg = new PluginRegistry();
  const plugin = Plugin.fromFile(findPlugin("kafka").manifest);
  reg.add(plugin);
  return { reg, plugin };
}

/** `n` zstd batches of `records` records each, `size` bytes apiece. */
function batches(n: number, records: number, size: number): Buffer {
  return Buffer.concat(Array.from({ length: n }, (_, k) => recordBatch(records, 4, { payload: size - 61, baseOffset: k * records })));
}

const fetchReq = request(1, 11, 21, "big-consumer", false,
  new W().i32(-1).i32(500).i32(1).i32(100 * MiB).i8(0).i32(0).i32(-1)
    .arr(["bulk"], (w, t) => w.str(t).arr([0, 1], (w, p) => w.i32(p).i32(-1).i64(0).i64(-1).i32(64 * MiB))).arr([], () => {}).str("").buf());

/** A Fetch v11 response: partition 0 carries `records`, partition 1 an uncompressed batch of 3 (after them). */
function fetchResp(records: Buffer): Buffer {
  return response(21, false,
    new W().i32(0).i16(0).i32(0)
      .arr(["bulk"], (w, t) => w.str(t).arr([[0, records], [1, recordBatch(3, 0)]], (w, [p, b]) => w.i32(p as number).i16(0).i64(11).i64(11).i64(0).arr([], () => {}).i32(-1).bytes(b as Buffer))).buf());
}

const heartbeatReq = request(12, 3, 22, "big-consumer", false, new W().str("g").i32(1).str("m-1").str(null).buf());
const heartbeatResp = response(22, false, new W().i32(0).i16(0).buf());

/** The chunks of `bytes` cut at `cuts` (offsets), then in pieces of at most 1 MiB. */
function chunked(dir: 0 | 1, bytes: Buffer, ts: bigint, cuts: number[] = []): Chunk[] {
  const out: Chunk[] = [];
  const at = [...new Set([0, ...cuts, bytes.length])].sort((a, b) => a - b);
  for (let i = 0; i + 1 < at.length; i++)
    for (let o = at[i]!; o < at[i + 1]!; o += MiB) out.push({ dir, bytes: bytes.subarray(o, Math.min(o + MiB, at[i + 1]!)), ts });
  return out;
}

test("kafka: a 3 MiB Produce request split after 3 bytes, then 1 MiB chunks: every batch counted", () => {
  const { reg } = registry();
  const req = request(0, 7, 9, "big-producer", false, new W().str(null).i16(-1).i32(30000).arr(["bulk"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).bytes(batches(300, 7, 10 * 1024)))).buf());
  const resp = response(9, false, new W().arr(["bulk"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).i16(0).i64(0).i64(-1).i64(0))).i32(0).buf());
  const res = runChunks(reg, "kafka", [{ dir: 0, bytes: req.subarray(0, 3), ts: 1000n }, ...chunked(0, req.subarray(3), 2000n), { dir: 1, bytes: resp, ts: 3000n }]);
  assert.equal(res.reason, undefined, JSON.stringify(res.counters));
  assert.equal(res.records.length, 1);
  const r = res.records[0]!;
  assert.deepEqual([r.operation, r.resource, r.status, r.reqBytes, r.durationNs], ["Produce", "bulk", 0, req.length, "2000"]);
  assert.equal(r.attributes["messaging.batch.message_count"], 2100);
  assert.equal(r.attributes["kafka.compression"], "zstd");
  assert.equal(r.attributes["kafka.records_counted"], undefined);
});

test("kafka: a 64 MiB Fetch response in 1 MiB chunks: every batch counted, in memory that does not grow with it", () => {
  const { reg, plugin } = registry();
  const run = (records: Buffer) => {
    const resp = fetchResp(records);
    const res = runChunks(reg, "kafka", [{ dir: 0, bytes: fetchReq, ts: 1000n }, ...chunked(1, resp, 2000n), { dir: 0, bytes: heartbeatReq, ts: 3000n }, { dir: 1, bytes: heartbeatResp, ts: 4000n }]);
    assert.equal(res.reason, undefined, JSON.stringify(res.counters));
    assert.deepEqual(res.records.map((r) => r.operation), ["Fetch", "Heartbeat"]);
    assert.equal(res.records[0]!.respBytes, resp.length);
    return res.records[0]!;
  };
  const small = run(batches(32, 10, 64 * 1024)); // 2 MiB
  assert.equal(small.attributes["messaging.batch.message_count"], 323);
  const after2 = plugin.instance().memoryBytes();
  const big = run(batches(1024, 10, 64 * 1024)); // 64 MiB
  assert.equal(big.attributes["messaging.batch.message_count"], 10243);
  assert.equal(big.attributes["kafka.compression"], "none,zstd");
  assert.equal(plugin.instance().memoryBytes(), after2, "instance memory grew with the message");
  assert.ok(after2 <= 8 * MiB, `instance memory ${after2} bytes`);
});

test("kafka: a chunk boundary at every byte of a batch header and of a RECORDS length past the buffered prefix", () => {
  const { reg } = registry();
  const records = batches(60, 7, 10 * 1024); // 600 KiB
  const resp = fetchResp(records);
  const first = resp.indexOf(records);
  const header = first + 40 * 10 * 1024; // the 41st batch, 400 KiB in
  const second = resp.lastIndexOf(recordBatch(3, 0)) - 4; // partition 1's RECORDS length
  for (const [from, n] of [[header, 61], [second, 4 + 61]] as const)
    for (let k = 0; k <= n; k++) {
      const res = runChunks(reg, "kafka", [{ dir: 0, bytes: fetchReq, ts: 1000n }, ...chunked(1, resp, 2000n, [from + k])]);
      assert.equal(res.records.length, 1);
      assert.equal(res.records[0]!.attributes["messaging.batch.message_count"], 423, `cut at ${from} + ${k}`);
    }
});

test("kafka: a gap past the buffered prefix: none in a batch's body, uncounted in a header, and the next response pairs", () => {
  const { reg } = registry();
  const records = batches(60, 7, 10 * 1024);
  const resp = fetchResp(records);
  const batch41 = resp.indexOf(records) + 40 * 10 * 1024;
  const run = (at: number, len: number) =>
    runChunks(reg, "kafka", [
      { dir: 0, bytes: fetchReq, ts: 1000n },
      { dir: 1, bytes: resp.subarray(0, at), ts: 2000n },
      { dir: 1, gap: len, ts: 2100n },
      { dir: 1, bytes: resp.subarray(at + len), ts: 2200n },
      { dir: 0, bytes: heartbeatReq, ts: 3000n },
      { dir: 1, bytes: heartbeatResp, ts: 4000n },
    ]);
  const inBody = run(batch41 + 61 + 100, 5000);
  assert.deepEqual(inBody.records.map((r) => r.operation), ["Fetch", "Heartbeat"]);
  assert.equal(inBody.records[0]!.attributes["messaging.batch.message_count"], 423, "a gap in a body skipped anyway costs nothing");
  const inHeader = run(batch41 + 20, 30);
  assert.deepEqual(inHeader.records.map((r) => r.operation), ["Fetch", "Heartbeat"]);
  assert.equal(inHeader.records[0]!.attributes["kafka.records_counted"], false);
  assert.equal(inHeader.records[0]!.attributes["messaging.batch.message_count"], undefined, "never a partial count");
  assert.equal(inHeader.records[1]!.status, 0);
  // the Fetch keeps its record: no message dropped, only the rest of it passed over
  assert.deepEqual(pluginCounters(inBody.counters, "kafka"), { errors: 0, drops: 0, bytes_dropped: 0 });
  assert.deepEqual(pluginCounters(inHeader.counters, "kafka"), { errors: 0, drops: 0, bytes_dropped: resp.length - (batch41 + 20 + 30) });
});

test("kafka: a connection that ends inside a large Fetch response: written, not counted", () => {
  const { reg } = registry();
  const resp = fetchResp(batches(60, 7, 10 * 1024));
  for (const cut of [300 * 1024, 300 * 1024 + 30, resp.length - 1]) {
    const res = runChunks(reg, "kafka", [{ dir: 0, bytes: fetchReq, ts: 1000n }, { dir: 1, bytes: resp.subarray(0, cut), ts: 2000n }]);
    assert.equal(res.records.length, 1, `cut at ${cut}`);
    assert.equal(res.records[0]!.attributes["kafka.records_counted"], false, `cut at ${cut}`);
    assert.equal(res.records[0]!.attributes["messaging.batch.message_count"], undefined);
  }
});

// Topics and error codes past the buffered prefix: the api/ decoders read the first 256 KiB of a
// message; the walk reads the names, ids and error codes that do not lie whole inside it.

/** A Fetch v11 request of a fetch session (KIP-227) that names no topics: the response does. */
const sessionReq = request(1, 11, 31, "session-consumer", false,
  new W().i32(-1).i32(500).i32(1).i32(100 * MiB).i8(0).i32(77).i32(5).arr([], () => {}).arr([], () => {}).str("").buf());

/** A Fetch v11 response over `topics`: [name, partition 0 records, partition 0 error, partition 1 error]. */
function sessionResp(topics: [string, Buffer, number, number][]): Buffer {
  return response(31, false,
    new W().i32(0).i16(0).i32(77)
      .arr(topics, (w, [name, recs, e0, e1]) => w.str(name)
        .arr([[0, recs, e0], [1, null, e1]] as [number, Buffer | null, number][], (w, [p, b, e]) => w.i32(p).i16(e).i64(11).i64(11).i64(0).arr([], () => {}).i32(-1).bytes(b))).buf());
}

test("kafka: a 6 MiB Fetch response over 5 topics whose request named none: every topic and the first error past the prefix, at every cut of the fields past it", () => {
  const { reg } = registry();
  const names = ["orders", "payments", "audit-log", "late-topic", "last"];
  const errors: [number, number][] = [[0, 0], [0, 0], [0, 0], [0, 6], [3, 0]]; // NOT_LEADER_OR_FOLLOWER in topic 3, partition 1
  const resp = sessionResp(names.map((n, i) => [n, batches(20, 10, 64 * 1024), errors[i]![0], errors[i]![1]] as [string, Buffer, number, number]));
  assert.ok(resp.length > 6 * MiB && resp.indexOf("payments") > 256 * 1024, "the second topic is past the prefix");
  const run = (cuts: number[]) => {
    const res = runChunks(reg, "kafka", [{ dir: 0, bytes: sessionReq, ts: 1000n }, ...chunked(1, resp, 2000n, cuts)]);
    assert.equal(res.reason, undefined, JSON.stringify(res.counters));
    assert.equal(res.records.length, 1);
    return res.records[0]!;
  };
  const r = run([]);
  assert.deepEqual([r.operation, r.resource, r.status, r.error, r.respBytes], ["Fetch", names.join(","), 6, true, resp.length]);
  assert.deepEqual(r.attributes["kafka.topics"], names);
  assert.equal(r.attributes["messaging.batch.message_count"], 5 * 200);
  // a chunk boundary at every byte of the third topic's name (a string cut: it waits) and of the
  // fourth topic's second partition entry (its error code cut)
  const name3 = resp.indexOf("audit-log") - 2;
  const late = resp.indexOf("late-topic");
  const part1 = late + 10 + 4 + 20 * 64 * 1024 + 60; // past the first partition's records, roughly
  for (let at = name3; at < name3 + 12; at++) assert.deepEqual([run([at]).resource, run([at]).status], [names.join(","), 6], `cut at ${at}`);
  for (let at = part1 - 40; at < part1 + 40; at++) {
    const x = run([at]);
    assert.deepEqual([x.resource, x.status, x.attributes["messaging.batch.message_count"]], [names.join(","), 6, 1000], `cut at ${at}`);
  }
});

test("kafka: a Fetch v13 response of 3 MiB: topic ids past the prefix are recorded (ids are kept from responses too, as in the prefix), with the error code 2 MiB in", () => {
  const { reg } = registry();
  const ids = ["0f1e2d3c4b5a69788796a5b4c3d2e1f0", "a1b2c3d4e5f647188899aabbccddeeff", "5e5e5e5e0000400080001234567890ab"];
  const v13Req = (named: string[]) => request(1, 13, 41, "c-13", true,
    new W(true).i32(-1).i32(500).i32(1).i32(100 * MiB).i8(0).i32(0).i32(-1)
      .arr(named, (w, id) => w.uuid(id).arr([0], (w, p) => w.i32(p).i32(5).i64(0).i32(-1).i64(-1).i32(64 * MiB).tags()).tags())
      .arr([], () => {}).str("").tags().buf());
  const v13Resp = response(41, true,
    new W(true).i32(0).i16(0).i32(0)
      .arr(ids.map((id, i) => [id, i] as [string, number]), (w, [id, i]) => w.uuid(id).arr([0], (w, p) => w.i32(p).i16(i === 2 ? 1 : 0).i64(10).i64(10).i64(0).arr(null, () => {}).i32(-1).bytes(batches(16, 10, 64 * 1024)).tags()).tags())
      .tags().buf());
  const run = (req: Buffer) => {
    const res = runChunks(reg, "kafka", [{ dir: 0, bytes: req, ts: 1000n }, ...chunked(1, v13Resp, 2000n)]);
    assert.equal(res.records.length, 1, JSON.stringify(res.counters));
    return res.records[0]!;
  };
  const none = run(v13Req([]));
  assert.deepEqual(none.attributes["kafka.topic_ids"], ids);
  assert.equal(none.status, 1, "OFFSET_OUT_OF_RANGE of the third topic, 2 MiB in");
  assert.equal(none.attributes["messaging.batch.message_count"], 480);
  const one = run(v13Req([ids[0]!]));
  assert.deepEqual(one.attributes["kafka.topic_ids"], ids, "the request's id first, then the response's");
  assert.equal(one.status, 1);
});

test("kafka: a 4 MiB Produce request over 4 topics: every topic named, those past the prefix too", () => {
  const { reg } = registry();
  const names = ["a-topic", "b-topic", "c-topic", "d-topic"];
  const req = request(0, 7, 51, "multi-producer", false,
    new W().str(null).i16(-1).i32(30000).arr(names, (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).bytes(batches(16, 7, 64 * 1024)))).buf());
  const resp = response(51, false, new W().arr(names, (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).i16(t === "d-topic" ? 10 : 0).i64(0).i64(-1).i64(0))).i32(0).buf());
  const res = runChunks(reg, "kafka", [...chunked(0, req, 1000n), { dir: 1, bytes: resp, ts: 2000n }]);
  assert.equal(res.records.length, 1, JSON.stringify(res.counters));
  const r = res.records[0]!;
  assert.deepEqual([r.resource, r.status], [names.join(","), 10]);
  assert.equal(r.attributes["messaging.batch.message_count"], 4 * 16 * 7);
});
