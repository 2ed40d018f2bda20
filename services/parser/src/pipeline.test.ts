import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ConnEventSchema, ConnKind, Counters, RawBatchSchema, Role } from "@wirescope/common";
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
  create(RawBatchSchema, { partition, batchSeq: BigInt(seq), probeId, conns });
const open = (key: bigint) => create(ConnEventSchema, { connKey: key, kind: ConnKind.OPEN, role: Role.SERVER, localPort: 80, remotePort: 5000 });

describe("Pipeline", () => {
  it("drops batches of partitions it does not own, counted", () => {
    const { p, counters } = setup();
    p.setOwned(new Set([1]), () => undefined);
    assert.equal(p.onRawBatch(batch(2, 1), 0), false);
    assert.equal(counters.get("raw_batches_dropped.not_owner"), 1);
    assert.equal(p.onRawBatch(batch(1, 1), 0), true);
  });

  it("counts holes in batch_seq per probe and partition", () => {
    const { p, counters } = setup();
    p.setOwned(new Set([1, 2]), () => undefined);
    p.onRawBatch(batch(1, 1), 0);
    p.onRawBatch(batch(1, 2), 0);
    p.onRawBatch(batch(1, 6), 0); // 3, 4, 5 never arrived
    p.onRawBatch(batch(2, 1, "probe-b"), 0);
    p.onRawBatch(batch(2, 2, "probe-b"), 0);
    assert.equal(counters.get("raw_batches_missed.gap"), 3);
    assert.deepEqual(p.progress(), { "probe-a/1": 6, "probe-b/2": 2 });
  });

  it("counts what the previous owner did not finish when taking a partition over", () => {
    const { p, counters } = setup();
    p.setOwned(new Set([3]), (part) => (part === 3 ? { "probe-a/3": 10, "probe-a/4": 99 } : undefined));
    p.onRawBatch(batch(3, 15), 0); // 11..14 lost between the owners
    assert.equal(counters.get("raw_batches_missed.handover"), 4);
    p.onRawBatch(batch(3, 16), 0);
    assert.equal(counters.get("raw_batches_missed.gap"), 0);
  });

  it("counts nothing when the previous owner's progress is unknown or continuous", () => {
    const { p, counters } = setup();
    p.setOwned(new Set([3, 4]), (part) => (part === 3 ? { "probe-a/3": 14 } : undefined));
    p.onRawBatch(batch(3, 15), 0);
    p.onRawBatch(batch(4, 7), 0);
    assert.equal(counters.get("raw_batches_missed.handover"), 0);
  });

  it("drops the connections of partitions that move away, counted", () => {
    const { p, counters } = setup();
    p.setOwned(new Set([1, 2]), () => undefined);
    p.onRawBatch(batch(1, 1, "probe-a", [open(11n), open(12n)]), 0);
    p.onRawBatch(batch(2, 1, "probe-a", [open(21n)]), 0);
    const moved = p.setOwned(new Set([2, 5]), () => undefined);
    assert.deepEqual(moved, { added: [5], removed: [1] });
    assert.equal(counters.get("conn_dropped.moved"), 2);
    assert.equal(p.table.size, 1);
    assert.equal(counters.get("partitions_owned"), 2);
  });

  it("starts again when a probe restarts its sequence", () => {
    const { p, counters } = setup();
    p.setOwned(new Set([1]), () => undefined);
    p.onRawBatch(batch(1, 50), 0);
    p.onRawBatch(batch(1, 1), 0);
    p.onRawBatch(batch(1, 2), 0);
    assert.equal(counters.get("raw_batches_restart"), 1);
    assert.equal(counters.get("raw_batches_missed.gap"), 0);
  });
});
