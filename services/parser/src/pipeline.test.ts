import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnEventSchema, ConnKind, DataEventSchema, Direction, RawBatchSchema, Role } from "@wirescope/wire";
import { Counters } from "@wirescope/runtime";
import { HANDOVER_READ_WAIT_MS, HANDOVER_SETTLE_MS, Pipeline, type Progress } from "./pipeline.js";
import { DEFAULT_MAX_DETECT_BYTES, LoadedPlugin, PluginSet } from "./wasm-plugins.js";
import { recordsByConn } from "./test-support/records.js";
import { DEFAULT_CONN_TABLE_OPTIONS } from "./conn-table.js";
import { redactionPolicy } from "./redact.js";
import type { DecoderHost } from "./decoder.js";

// No plugin ever claims anything: these tests are about ownership and batch accounting.
const host: DecoderHost = {
  open: () => ({ data: () => ({ records: [], state: "detecting" }), gap: () => ({ records: [], state: "detecting" }), close: () => ({ records: [], state: "closed" }), free: () => {} }),
};

function setup() {
  const counters = new Counters();
  const p = new Pipeline(host, { ...DEFAULT_CONN_TABLE_OPTIONS, node: "n", parserId: "me", partitions: 8, redaction: redactionPolicy(), maxBatchBytes: 1 << 20, maxQueuedBatches: 16 }, counters);
  return { p, counters };
}

const batch = (partition: number, seq: number, probeId = "probe-a", conns = [] as ReturnType<typeof open>[]) =>
  toBinary(RawBatchSchema, create(RawBatchSchema, { partition, batchSeq: BigInt(seq), probeId, conns }));
const open = (key: bigint) => create(ConnEventSchema, { connKey: key, kind: ConnKind.OPEN, role: Role.SERVER, localPort: 80, remotePort: 5000 });

describe("Pipeline", () => {
  it("drops batches of partitions it does not own, counted", () => {
    const { p, counters } = setup();
    p.setOwned(new Set([1]), () => undefined);
    assert.equal(p.onRawBytes(batch(2, 1), 0), false);
    assert.equal(counters.get("raw_batches_dropped.not_owner"), 1);
    assert.equal(p.onRawBytes(batch(1, 1), 0), true);
  });

  it("counts holes in batch_seq per probe and partition", () => {
    const { p, counters } = setup();
    p.setOwned(new Set([1, 2]), () => undefined);
    p.onRawBytes(batch(1, 1), 0);
    p.onRawBytes(batch(1, 2), 0);
    p.onRawBytes(batch(1, 6), 0); // 3, 4, 5 never arrived
    p.onRawBytes(batch(2, 1, "probe-b"), 0);
    p.onRawBytes(batch(2, 2, "probe-b"), 0);
    assert.equal(counters.get("raw_batches_missed.gap"), 3);
    assert.deepEqual(p.progress(), { "probe-a/1": 6, "probe-b/2": 2 });
  });

  it("gives in progress() only what moved since the last call; snapshot() holds it all", () => {
    const { p } = setup();
    p.setOwned(new Set([1, 2]), () => undefined);
    p.onRawBytes(batch(1, 1), 0);
    p.onRawBytes(batch(2, 1), 0);
    assert.deepEqual(p.progress(), { "probe-a/1": 1, "probe-a/2": 1 });
    assert.deepEqual(p.progress(), {});
    p.onRawBytes(batch(2, 2), 0);
    assert.deepEqual(p.progress(), { "probe-a/2": 2 });
    assert.deepEqual(p.snapshot(), { "probe-a/1": 1, "probe-a/2": 2 });
  });

  it("keeps the work of progress() proportional to what moved, not to the probes and partitions held", () => {
    // 2,000 probe/partition keys held; each call after one batch returns one key
    const { p } = setup();
    p.setOwned(new Set([1, 2, 3, 4]), () => undefined);
    for (let n = 0; n < 500; n++) for (const part of [1, 2, 3, 4]) p.onRawBytes(batch(part, 1, `probe-${n}`), 0);
    assert.equal(Object.keys(p.progress()).length, 2000);
    for (let seq = 2; seq < 50; seq++) {
      p.onRawBytes(batch(1, seq, "probe-7"), 0);
      assert.deepEqual(p.progress(), { "probe-7/1": seq });
    }
    assert.equal(Object.keys(p.snapshot()).length, 2000);
  });

  it("counts what the previous owner did not finish when taking a partition over", () => {
    const { p, counters } = setup();
    p.setOwned(new Set([3]), (part) => (part === 3 ? () => ({ "probe-a/3": 10, "probe-a/4": 99 }) : undefined));
    p.onRawBytes(batch(3, 15), 0); // 11..14 lost between the owners
    p.sweep(HANDOVER_SETTLE_MS - 1);
    assert.equal(counters.get("raw_batches_missed.handover"), 0, "not before the previous owner's last progress can have come");
    p.sweep(HANDOVER_SETTLE_MS);
    assert.equal(counters.get("raw_batches_missed.handover"), 4);
    p.onRawBytes(batch(3, 16), 0);
    assert.equal(counters.get("raw_batches_missed.gap"), 0);
  });

  it("counts the requests served that missed batches held, from the probe's running count", () => {
    const { p, counters } = setup();
    const served = (partition: number, seq: number, before: number, n: number) =>
      toBinary(RawBatchSchema, create(RawBatchSchema, { partition, batchSeq: BigInt(seq), probeId: "probe-a", servedBefore: BigInt(before), served: n }));
    p.setOwned(new Set([1, 3]), (part) => (part === 3 ? () => ({ "probe-a/3": 10, "s:probe-a/3": 500 }) : undefined));
    p.onRawBytes(served(1, 1, 0, 7), 0);
    p.onRawBytes(served(1, 2, 7, 0), 0); // a batch without answers still states the count
    p.onRawBytes(served(1, 5, 30, 4), 0); // 3 and 4 held 23 requests
    assert.equal(counters.get("raw_batches_missed.gap"), 2);
    assert.equal(counters.get("requests_missed.gap"), 23);
    p.onRawBytes(served(1, 6, 34, 1), 0); // continuous: nothing
    assert.equal(counters.get("requests_missed.gap"), 23);
    // taken over: the previous owner committed through batch 10, 500 served; 11..14 held 40
    p.onRawBytes(served(3, 15, 540, 2), 0);
    p.sweep(HANDOVER_SETTLE_MS);
    assert.equal(counters.get("requests_missed.handover"), 40);
    assert.equal(p.snapshot()["s:probe-a/1"], 35);
    assert.equal(p.snapshot()["s:probe-a/3"], 542);
    p.progress();
    // a restarted probe counts from 0 again: its first gap counts from its own batches only
    p.onRawBytes(served(1, 1, 0, 3), 0);
    p.onRawBytes(served(1, 3, 9, 0), 0);
    assert.equal(counters.get("requests_missed.gap"), 29);
    // a partition that moved away: its count is committed once more, then forgotten
    p.setOwned(new Set([3]), () => undefined);
    assert.equal(p.progress()["s:probe-a/1"], 9);
    assert.equal(p.progress()["s:probe-a/1"], undefined);
  });

  it("counts nothing when the partition had no previous owner or its progress is continuous", () => {
    const { p, counters } = setup();
    p.setOwned(new Set([3, 4]), (part) => (part === 3 ? () => ({ "probe-a/3": 14 }) : undefined));
    p.onRawBytes(batch(3, 15), 0);
    p.onRawBytes(batch(4, 7), 0);
    p.sweep(HANDOVER_SETTLE_MS);
    p.sweep(HANDOVER_READ_WAIT_MS);
    assert.equal(counters.get("raw_batches_missed.handover"), 0);
    assert.equal(counters.get("handovers_unmeasured"), 0);
  });

  it("waits for the previous owner's progress to be read before counting a takeover, and says when it never is", () => {
    // a loaded machine: the KV read of the previous owner's progress answers after the settle time
    const { p, counters } = setup();
    let theirs: Record<string, number> | undefined;
    p.setOwned(new Set([3, 5]), (part) => (part === 3 ? () => theirs : part === 5 ? () => undefined : undefined));
    p.onRawBytes(batch(3, 15), 0); // 11..14 lost between the owners
    p.onRawBytes(batch(5, 4), 0);
    p.sweep(HANDOVER_SETTLE_MS);
    assert.equal(counters.get("raw_batches_missed.handover"), 0, "not counted against nothing");
    theirs = { "probe-a/3": 10 };
    p.sweep(HANDOVER_SETTLE_MS + 3000);
    assert.equal(counters.get("raw_batches_missed.handover"), 4, "counted once read");
    assert.equal(counters.get("handovers_unmeasured"), 0);
    p.sweep(HANDOVER_READ_WAIT_MS);
    assert.equal(counters.get("handovers_unmeasured"), 1, "partition 5's previous owner never read");
    assert.equal(counters.get("raw_batches_missed.handover"), 4);
  });

  it("counts a takeover against the previous owner's progress as it stands once settled, and commits a released partition's progress once", () => {
    // the replica letting partition 3 go had handled through 14 but committed through 10 when
    // the new owner's first batch came; its next flush commits 14: nothing was lost
    const { p, counters } = setup();
    let theirs: Progress = { "probe-a/3": 10 };
    p.setOwned(new Set([3]), () => () => theirs);
    p.onRawBytes(batch(3, 15), 0);
    theirs = { "probe-a/3": 14 };
    p.sweep(HANDOVER_SETTLE_MS);
    assert.equal(counters.get("raw_batches_missed.handover"), 0);
    // this replica lets 3 go: its last progress is in the next progress() (then committed), once
    p.onRawBytes(batch(3, 16), 0);
    p.setOwned(new Set([4]), () => undefined);
    assert.deepEqual(p.progress(), { "probe-a/3": 16 });
    assert.deepEqual(p.progress(), {});
    // and a takeover it never saw a batch of is not counted
    p.sweep(2 * HANDOVER_SETTLE_MS);
    assert.equal(counters.get("raw_batches_missed.handover"), 0);
  });

  it("drops the connections of partitions that move away, counted", () => {
    const { p, counters } = setup();
    p.setOwned(new Set([1, 2]), () => undefined);
    p.onRawBytes(batch(1, 1, "probe-a", [open(11n), open(12n)]), 0);
    p.onRawBytes(batch(2, 1, "probe-a", [open(21n)]), 0);
    const moved = p.setOwned(new Set([2, 5]), () => undefined);
    assert.deepEqual(moved, { added: [5], removed: [1] });
    assert.equal(counters.get("conn_dropped.moved"), 2);
    assert.equal(p.table.size, 1);
    assert.equal(counters.get("partitions_owned"), 2);
  });

  it("starts again when a probe restarts its sequence", () => {
    const { p, counters } = setup();
    p.setOwned(new Set([1]), () => undefined);
    p.onRawBytes(batch(1, 50), 0);
    p.onRawBytes(batch(1, 1), 0);
    p.onRawBytes(batch(1, 2), 0);
    assert.equal(counters.get("raw_batches_restart"), 1);
    assert.equal(counters.get("raw_batches_missed.gap"), 0);
  });

  it("counts a message that does not decode, by reason, and goes on", () => {
    const { p, counters } = setup();
    p.setOwned(new Set([1]), () => undefined);
    const good = batch(1, 1, "probe-a", [open(11n)]);
    assert.equal(p.onRawBytes(good.subarray(0, good.length - 3), 0), false);
    assert.equal(p.onRawBytes(Uint8Array.from([0x0a, 0x05, 0x61]), 0), false);
    assert.equal(p.onRawBytes(Uint8Array.from([0x0f, 0x01]), 0), false); // wire type 7
    assert.equal(counters.get("raw_decode_errors"), 3);
    assert.equal(counters.get("raw_decode_errors.truncated"), 2);
    assert.equal(counters.get("raw_decode_errors.bad_wire_type"), 1);
    assert.equal(p.table.size, 0);
    assert.equal(p.onRawBytes(good, 0), true);
    assert.equal(p.table.size, 1);
  });

  it("hands every event's bytes to its connection in order: opens first, closes last, one call per in-order event", () => {
    const calls: string[] = [];
    const counting: DecoderHost = {
      open: () => ({
        data: (dir, bytes) => (calls.push(`${dir}:${Buffer.from(bytes).toString()}`), { records: [], state: "decoding" }),
        gap: (dir, len) => (calls.push(`${dir}:gap${len}`), { records: [], state: "decoding" }),
        close: () => (calls.push("close"), { records: [], state: "closed" }),
        free: () => {},
      }),
    };
    const counters = new Counters();
    const p = new Pipeline(counting, { ...DEFAULT_CONN_TABLE_OPTIONS, node: "n", parserId: "me", partitions: 8, redaction: redactionPolicy(), maxBatchBytes: 1 << 20, maxQueuedBatches: 16 }, counters);
    p.setOwned(new Set([1]), () => undefined);
    const ev = (connKey: bigint, direction: Direction, seq: number, s: string) =>
      create(DataEventSchema, { connKey, direction, seq: BigInt(seq), payload: Buffer.from(s), originalLength: s.length, timestampNs: 1n });
    // two connections interleaved, one event out of order; conn 2^60+1 needs all 64 bits
    const big = (1n << 60n) + 1n;
    const data = [ev(5n, Direction.INGRESS, 0, "ab"), ev(big, Direction.INGRESS, 0, "x"), ev(5n, Direction.INGRESS, 4, "ef"), ev(5n, Direction.INGRESS, 2, "cd"), ev(5n, Direction.EGRESS, 0, "OK")];
    const conns = [create(ConnEventSchema, { connKey: 5n, kind: ConnKind.CLOSE }), open(5n), open(big)];
    assert.ok(p.onRawBytes(toBinary(RawBatchSchema, create(RawBatchSchema, { partition: 1, batchSeq: 1n, probeId: "a", conns, data })), 0));
    assert.deepEqual(calls, ["0:ab", "0:x", "0:cd", "0:ef", "1:OK", "close"]);
    assert.equal(counters.get("raw_bytes"), 9);
    assert.equal(p.table.size, 1);
  });

  it("passes the hole a lost raw batch left as a gap at once, in the direction it shows up in, and holds a reordered one", () => {
    const calls: string[] = [];
    const counting: DecoderHost = {
      open: () => ({
        data: (dir, bytes) => (calls.push(`${dir}:${Buffer.from(bytes).toString()}`), { records: [], state: "decoding" }),
        gap: (dir, len) => (calls.push(`${dir}:gap${len}`), { records: [], state: "decoding" }),
        close: () => ({ records: [], state: "closed" }),
        free: () => {},
      }),
    };
    const counters = new Counters();
    const p = new Pipeline(counting, { ...DEFAULT_CONN_TABLE_OPTIONS, node: "n", parserId: "me", partitions: 8, redaction: redactionPolicy(), maxBatchBytes: 1 << 20, maxQueuedBatches: 16 }, counters);
    p.setOwned(new Set([1]), () => undefined);
    const ev = (direction: Direction, seq: number, s: string) =>
      create(DataEventSchema, { connKey: 7n, direction, seq: BigInt(seq), payload: Buffer.from(s), originalLength: s.length, timestampNs: 1n });
    const send = (batchSeq: number, data: ReturnType<typeof ev>[], conns: ReturnType<typeof open>[] = []) =>
      p.onRawBytes(toBinary(RawBatchSchema, create(RawBatchSchema, { partition: 1, batchSeq: BigInt(batchSeq), probeId: "a", conns, data })), 0);
    send(1, [ev(Direction.INGRESS, 0, "ab"), ev(Direction.EGRESS, 0, "OK")], [open(7n)]);
    // batch 2 (ingress "cd", egress "??") is lost; batch 3 shows the ingress hole at once
    send(3, [ev(Direction.INGRESS, 4, "ef")]);
    assert.deepEqual(calls, ["0:ab", "1:OK", "0:gap2", "0:ef"]);
    // the egress hole shows up two batches later: a gap at once too, not after the reorder limits
    send(4, [ev(Direction.INGRESS, 6, "gh")]);
    send(5, [ev(Direction.EGRESS, 4, "!!")]);
    assert.deepEqual(calls.slice(4), ["0:gh", "1:gap2", "1:!!"]);
    assert.equal(counters.get("gaps_forced.raw_batch_missed"), 2);
    assert.equal(counters.get("gap_bytes.server_request"), 2);
    assert.equal(counters.get("gap_bytes.server_response"), 2);
    assert.equal(counters.get("gaps.server_request"), 1);
    // without a lost batch, a hole waits for its bytes (reordering)
    send(6, [ev(Direction.INGRESS, 10, "kl")]);
    send(7, [ev(Direction.INGRESS, 8, "ij")]);
    assert.deepEqual(calls.slice(7), ["0:ij", "0:kl"]);
    assert.equal(counters.get("gaps_forced.raw_batch_missed"), 2);
  });

  it("counts a gap by the direction the decoder found requests in (a session flipped by content)", () => {
    const flipped: DecoderHost = {
      open: () => ({ flipped: true, orientation: "content", data: () => ({ records: [], state: "decoding" }), gap: () => ({ records: [], state: "decoding" }), close: () => ({ records: [], state: "closed" }), free: () => {} }),
    };
    const counters = new Counters();
    const p = new Pipeline(flipped, { ...DEFAULT_CONN_TABLE_OPTIONS, node: "n", parserId: "me", partitions: 8, redaction: redactionPolicy(), maxBatchBytes: 1 << 20, maxQueuedBatches: 16 }, counters);
    p.setOwned(new Set([1]), () => undefined);
    // server socket: ingress is the caller's dir 0, which the decoder found to be responses
    const data = [create(DataEventSchema, { connKey: 9n, direction: Direction.INGRESS, seq: 0n, payload: Buffer.from("ab"), originalLength: 5, timestampNs: 1n })];
    p.onRawBytes(toBinary(RawBatchSchema, create(RawBatchSchema, { partition: 1, batchSeq: 1n, probeId: "a", conns: [open(9n)], data })), 0);
    assert.equal(counters.get("gap_bytes.server_response"), 3);
    assert.equal(counters.get("gap_bytes.server_request"), 0);
  });
});

// ---- the real plugin host: a raw batch's chunks in one feed_batch call per plugin instance ----

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const HTTP1 = "parsers-wasm/build/http1.json";
const REDIS_V1 = "parsers-wasm/test-support/fixtures/redis-v1/build/redis-v1.json";
const MISBEHAVE = "parsers-wasm/test-support/fixtures/misbehave/build/misbehave.json";

/** A Pipeline over the real plugin host with these built plugins; `batch` false: one call per chunk. */
function pluginPipeline(manifests: string[], batch: boolean) {
  const plugins = new PluginSet(DEFAULT_MAX_DETECT_BYTES, { batch });
  for (const m of manifests) {
    const file = path.join(root, m);
    const manifest = JSON.parse(fs.readFileSync(file, "utf8")) as { name: string; wasm?: string };
    plugins.put(LoadedPlugin.load(manifest, fs.readFileSync(path.join(path.dirname(file), manifest.wasm ?? `${manifest.name}.wasm`)), "builtin", () => true));
  }
  const counters = new Counters();
  const p = new Pipeline(plugins, { ...DEFAULT_CONN_TABLE_OPTIONS, node: "n", parserId: "me", partitions: 8, redaction: redactionPolicy(), maxBatchBytes: 1 << 20, maxQueuedBatches: 1 << 20 }, counters);
  p.setOwned(new Set([0, 1, 2, 3, 4, 5, 6, 7]), () => undefined);
  return { p, counters, plugins };
}

/** Server-side sockets' events as the probe sends them (requests are ingress), one RawBatch at a time. */
class RawFeed {
  private readonly off = new Map<string, number>();
  private ts = 1_000_000_000n;
  private data: ReturnType<typeof create<typeof DataEventSchema>>[] = [];
  private conns: ReturnType<typeof open>[] = [];
  private seq = 0;

  open(key: bigint): void {
    this.conns.push(open(key));
  }

  close(key: bigint): void {
    this.conns.push(create(ConnEventSchema, { connKey: key, kind: ConnKind.CLOSE, role: Role.SERVER, localPort: 80, remotePort: 5000, timestampNs: (this.ts += 1000n) }));
  }

  /** `dir` 0: the client's bytes. */
  add(key: bigint, dir: 0 | 1, s: string): void {
    const payload = Buffer.from(s);
    const k = `${key}/${dir}`;
    const seq = this.off.get(k) ?? 0;
    this.off.set(k, seq + payload.length);
    this.data.push(create(DataEventSchema, { connKey: key, direction: dir === 0 ? Direction.INGRESS : Direction.EGRESS, seq: BigInt(seq), timestampNs: (this.ts += 1000n), tid: 70 + dir, payload, originalLength: payload.length }));
  }

  /** The RawBatch of everything added since the last one (partition 1). */
  take(): Uint8Array {
    const b = toBinary(RawBatchSchema, create(RawBatchSchema, { partition: 1, batchSeq: BigInt(++this.seq), probeId: "a", node: "n", conns: this.conns, data: this.data }));
    this.conns = [];
    this.data = [];
    return b;
  }
}

/** Runs the same raw batches through a batching pipeline and a call-per-chunk one; returns both. */
function bothWays(manifests: string[], batches: Uint8Array[]) {
  const one = pluginPipeline(manifests, false);
  const many = pluginPipeline(manifests, true);
  const calls: { calls: number; entries: number }[] = [];
  for (const b of batches) {
    assert.ok(one.p.onRawBytes(b, 0));
    const before = { ...many.plugins.engine.batched };
    assert.ok(many.p.onRawBytes(b, 0));
    calls.push({ calls: many.plugins.engine.batched.calls - before.calls, entries: many.plugins.engine.batched.entries - before.entries });
  }
  assert.equal(one.plugins.engine.batched.calls, 0);
  return { one, many, calls };
}

describe("Pipeline over the plugin host: a raw batch in one feed_batch call per plugin instance", () => {
  const req = (k: bigint, n: number) => `GET /c${k}/r${n} HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer s3cret\r\n\r\n`;
  const resp = (n: number) => `HTTP/1.1 ${n % 2 ? 404 : 200} OK\r\nContent-Length: 2\r\n\r\nok`;
  const redis = (n: number) => [`*2\r\n$3\r\nGET\r\n$2\r\nk${n % 10}\r\n`, `$2\r\nv${n % 10}\r\n`];

  it("one call per instance per raw batch for 40 HTTP/1.1 connections; a version 1 plugin's 10 connections one call per chunk; the same records and counters as one call per chunk", () => {
    const http = Array.from({ length: 40 }, (_, i) => BigInt(100 + i));
    const kv = Array.from({ length: 10 }, (_, i) => BigInt(200 + i));
    const f = new RawFeed();
    const batches: Uint8Array[] = [];
    // 1: opens, and each connection's first exchange (detection: one call per step)
    for (const k of [...http, ...kv]) f.open(k);
    for (const k of http) f.add(k, 0, req(k, 0)), f.add(k, 1, resp(0));
    for (const k of kv) f.add(k, 0, redis(0)[0]!), f.add(k, 1, redis(0)[1]!);
    batches.push(f.take());
    // 2 and 3: three exchanges per connection, the connections interleaved
    for (let b = 0; b < 2; b++) {
      for (let n = 1; n <= 3; n++) {
        for (const k of http) f.add(k, 0, req(k, n)), f.add(k, 1, resp(n));
        for (const k of kv) f.add(k, 0, redis(n)[0]!), f.add(k, 1, redis(n)[1]!);
      }
      batches.push(f.take());
    }
    // 4: closes
    for (const k of [...http, ...kv]) f.close(k);
    batches.push(f.take());
    const { one, many, calls } = bothWays([HTTP1, REDIS_V1], batches);
    // detection in batch 1 runs call by call; then the HTTP/1.1 instance gets each raw batch's
    // 240 chunks in one call, and its 40 closes in one call, the version 1 plugin none
    assert.deepEqual(calls, [
      { calls: 0, entries: 0 },
      { calls: 1, entries: 240 },
      { calls: 1, entries: 240 },
      { calls: 1, entries: 40 },
    ]);
    const got = recordsByConn(many.p);
    assert.deepEqual(got, recordsByConn(one.p));
    assert.equal(got.size, 50);
    for (const k of http) assert.equal(got.get(k)!.length, 7);
    for (const k of kv) assert.equal(got.get(k)!.length, 7);
    assert.equal(many.counters.get("records.http1"), 280);
    assert.equal(many.counters.get("records.redis"), 70);
    assert.equal(many.counters.get("conn_closed.closed"), 50);
    assert.deepEqual(many.counters.snapshot(), one.counters.snapshot());
    assert.deepEqual(many.plugins.engineCounters.snapshot(), one.plugins.engineCounters.snapshot());
    // redaction still applies to batched records
    for (const list of got.values()) for (const hex of list) assert.ok(!Buffer.from(hex, "hex").includes("s3cret"));
  });

  it("closes go into the raw batch's feed_batch call after their connections' chunks; waiting requests come out as with one call per chunk", () => {
    const keys = Array.from({ length: 30 }, (_, i) => BigInt(400 + i));
    const quiet = Array.from({ length: 5 }, (_, i) => BigInt(500 + i));
    const f = new RawFeed();
    const batches: Uint8Array[] = [];
    for (const k of [...keys, ...quiet]) f.open(k);
    for (const k of keys) f.add(k, 0, req(k, 0)), f.add(k, 1, resp(0));
    // connections that never make a record: their close runs at once, one call each
    for (const k of quiet) f.add(k, 0, "GET /partial");
    batches.push(f.take());
    // one exchange, a request left waiting, then the close, all in one raw batch
    for (const k of keys) f.add(k, 0, req(k, 1)), f.add(k, 1, resp(1)), f.add(k, 0, req(k, 2));
    for (const k of [...keys, ...quiet]) f.close(k);
    batches.push(f.take());
    const { one, many, calls } = bothWays([HTTP1], batches);
    assert.deepEqual(calls, [
      { calls: 0, entries: 0 },
      { calls: 1, entries: 30 * 3 + 30 },
    ]);
    const got = recordsByConn(many.p);
    assert.deepEqual(got, recordsByConn(one.p));
    for (const k of keys) assert.equal(got.get(k)!.length, 3, "two exchanges and the request the close found waiting");
    assert.equal(many.counters.get("conn_closed.closed") + many.counters.get("conn_closed.unclaimed"), 35);
    assert.equal(many.p.table.size, 0);
    assert.deepEqual(many.counters.snapshot(), one.counters.snapshot());
    assert.deepEqual(many.plugins.engineCounters.snapshot(), one.plugins.engineCounters.snapshot());
  });

  it("a plugin that traps inside a batch: its instance's connections dropped and counted as one call per chunk drops them; later chunks of the batch ignored", () => {
    const keys = Array.from({ length: 6 }, (_, i) => BigInt(300 + i));
    const f = new RawFeed();
    for (const k of keys) f.open(k), f.add(k, 0, `MB:REC hello ${k}`);
    const first = f.take();
    for (const k of keys) f.add(k, 0, `MB:REC a ${k}`);
    f.add(keys[2]!, 0, "MB:TRAP");
    for (const round of ["b", "c"]) for (const k of keys) f.add(k, 0, `MB:REC ${round} ${k}`);
    const second = f.take();
    for (const k of keys) f.close(k);
    const { one, many, calls } = bothWays([MISBEHAVE], [first, second, f.take()]);
    assert.deepEqual(calls.map((c) => c.calls), [0, 1, 0], "the trap ends the call; the rest go one by one into the dead instance");
    assert.deepEqual(recordsByConn(many.p), recordsByConn(one.p));
    assert.deepEqual(many.counters.snapshot(), one.counters.snapshot());
    assert.equal(many.counters.get("conn_dropped.plugin_trap"), 6);
    // b of the trapped connection and every c: their connections were gone (one call per chunk)
    assert.equal(many.counters.get("data_ignored"), 7);
    assert.equal(many.plugins.engineCounters.get("plugin_traps.misbehave"), 1);
    // the engine saw those 7 chunks (handed over before the trap's answer came): it counts their
    // bytes as dropped, where one call per chunk never handed them over; nothing else differs
    const without = (s: Record<string, number>) => Object.fromEntries(Object.entries(s).filter(([k]) => k !== "bytes_dropped.plugin_trap"));
    assert.deepEqual(without(many.plugins.engineCounters.snapshot()), without(one.plugins.engineCounters.snapshot()));
    const ignoredBytes = ["b", "c"].flatMap((r) => keys.filter((k) => r === "c" || k === keys[2]).map((k) => `MB:REC ${r} ${k}`.length)).reduce((a, b) => a + b, 0);
    assert.equal(many.plugins.engineCounters.get("bytes_dropped.plugin_trap") - one.plugins.engineCounters.get("bytes_dropped.plugin_trap"), ignoredBytes);
  });
});
