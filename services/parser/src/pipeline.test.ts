import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnEventSchema, ConnKind, DataEventSchema, Direction, RawBatchSchema, Role } from "@wirescope/wire";
import { Counters } from "@wirescope/runtime";
import { Pipeline } from "./pipeline.js";
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

  it("counts what the previous owner did not finish when taking a partition over", () => {
    const { p, counters } = setup();
    p.setOwned(new Set([3]), (part) => (part === 3 ? { "probe-a/3": 10, "probe-a/4": 99 } : undefined));
    p.onRawBytes(batch(3, 15), 0); // 11..14 lost between the owners
    assert.equal(counters.get("raw_batches_missed.handover"), 4);
    p.onRawBytes(batch(3, 16), 0);
    assert.equal(counters.get("raw_batches_missed.gap"), 0);
  });

  it("counts nothing when the previous owner's progress is unknown or continuous", () => {
    const { p, counters } = setup();
    p.setOwned(new Set([3, 4]), (part) => (part === 3 ? { "probe-a/3": 14 } : undefined));
    p.onRawBytes(batch(3, 15), 0);
    p.onRawBytes(batch(4, 7), 0);
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
