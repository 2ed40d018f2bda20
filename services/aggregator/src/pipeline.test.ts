import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Pipeline, type Ackable, type Positions } from "./pipeline.js";
import { Aggregator } from "./core/aggregator.js";
import { makeRecord } from "./test-support/records.js";

const W = 10_000;
const W0 = 1_700_000_000_000;
const server = { service: "api", address: "10.0.0.2", port: 80, pid: 1 };

class Msg implements Ackable {
  acked = 0;
  constructor(
    readonly seq: number,
    readonly redelivered = false,
    readonly partition = 0,
  ) {}
  ack() {
    this.acked++;
  }
}

/** A sink whose writes complete when the test says so. */
function controlledSink() {
  const pending: { lines: string[]; done: () => void }[] = [];
  const saved: number[] = [];
  const positions: Positions[] = [];
  let saveGate: Promise<void> = Promise.resolve();
  return {
    pending,
    saved,
    positions,
    holdSaves(p: Promise<void>) {
      saveGate = p;
    },
    deps: {
      write: (lines: string[]) => new Promise<{ written: number; dropped: number }>((res) => pending.push({ lines, done: () => res({ written: lines.length, dropped: 0 }) })),
      saveWatermark: async (ms: number, pos: Positions) => {
        await saveGate;
        saved.push(ms);
        positions.push(pos);
      },
    },
  };
}

const tick = () => new Promise((r) => setTimeout(r, 5));

describe("Pipeline", () => {
  it("acknowledges a batch only after every window it touched is written and the watermark saved", async () => {
    const sink = controlledSink();
    const p = new Pipeline(new Aggregator({ spans: false, graceMs: 0 }), sink.deps, -Infinity);
    const a = new Msg(1); // window W0 only
    const b = new Msg(2); // windows W0 and W0+W
    p.onBatch([makeRecord({ startMs: W0 + 1, durationMs: 1, server })], a, W0 + 2);
    p.onBatch([makeRecord({ startMs: W0 + 2, durationMs: 1, server }), makeRecord({ startMs: W0 + W + 1, durationMs: 1, server })], b, W0 + W + 2);
    p.tick(W0 + W + 3); // closes W0 (event time passed its end)
    assert.equal(sink.pending.length, 1);
    assert.equal(a.acked + b.acked, 0, "nothing acked before InfluxDB answered");
    let release!: () => void;
    sink.holdSaves(new Promise<void>((r) => (release = r)));
    sink.pending[0]!.done();
    await tick();
    assert.equal(a.acked, 0, "not before the watermark is saved");
    release();
    await tick();
    assert.deepEqual(sink.saved, [W0 + W]);
    assert.equal(a.acked, 1);
    assert.equal(b.acked, 0, "b also touched the next window");
    p.tick(W0 + 3 * W, true);
    sink.pending[1]!.done();
    await p.settled();
    assert.equal(b.acked, 1);
    assert.equal(p.heldCount, 0);
  });

  it("counts a redelivery of a held batch once", () => {
    const sink = controlledSink();
    const agg = new Aggregator({ spans: false });
    const p = new Pipeline(agg, sink.deps, -Infinity);
    const recs = [makeRecord({ startMs: W0 + 1, durationMs: 1, server })];
    p.onBatch(recs, new Msg(7), W0 + 5);
    p.onBatch(recs, new Msg(7, true), W0 + 6);
    assert.equal(agg.counters.recordsIn, 1);
    assert.equal(p.counters.duplicateDeliveries, 1);
  });

  it("after a restart skips records of windows below the restored watermark and acks them at once", () => {
    const sink = controlledSink();
    const agg = new Aggregator({ spans: false });
    const p = new Pipeline(agg, sink.deps, W0 + W);
    const m = new Msg(3, true);
    p.onBatch([makeRecord({ startMs: W0 + 1, durationMs: 1, server })], m, W0 + 2 * W);
    assert.equal(m.acked, 1);
    assert.equal(agg.counters.drops.redelivered, 1);
    assert.equal(agg.openWindows, 0);
  });

  it("reads a batch delivered again after its ack, without the redelivered flag, as a replay", async () => {
    // A NATS server killed before its consumer's last acks were on disk delivers them again,
    // with a delivery count of 1: their windows are written, so nothing is late.
    const sink = controlledSink();
    const agg = new Aggregator({ spans: false, graceMs: 0 });
    const p = new Pipeline(agg, sink.deps, -Infinity);
    const recs = () => [makeRecord({ startMs: W0 + 1, durationMs: 1, server }), makeRecord({ startMs: W0 + 2, durationMs: 1, server })];
    const first = new Msg(4);
    p.onBatch(recs(), first, W0 + 3);
    p.onBatch([makeRecord({ startMs: W0 + W + 1, durationMs: 1, server })], new Msg(9), W0 + W + 2);
    p.tick(W0 + W + 3);
    sink.pending[0]!.done();
    await p.settled();
    assert.equal(first.acked, 1);
    const again = new Msg(4);
    p.onBatch(recs(), again, W0 + W + 4);
    assert.equal(again.acked, 1, "acknowledged at once: every window it touched is written");
    assert.equal(agg.counters.drops.late, 0);
    assert.equal(agg.counters.drops.redelivered, 2);
    assert.equal(p.counters.replaysAfterAck, 1);
    // a new batch after the highest sequence is not a replay, even when its records are late
    const late = new Msg(10);
    p.onBatch([makeRecord({ startMs: W0 + 3, durationMs: 1, server })], late, W0 + W + 5);
    assert.equal(agg.counters.drops.late, 1);
    assert.equal(p.counters.replaysAfterAck, 1);
  });

  it("does not close windows while holding for redeliveries", () => {
    const sink = controlledSink();
    const p = new Pipeline(new Aggregator({ spans: false, graceMs: 0 }), sink.deps, -Infinity);
    p.onBatch([makeRecord({ startMs: W0 + 1, durationMs: 1, server })], new Msg(1), W0 + 2);
    p.holdClosingUntil(W0 + 5 * W);
    p.tick(W0 + 2 * W);
    assert.equal(sink.pending.length, 0);
    p.releaseHold();
    p.tick(W0 + 2 * W);
    assert.equal(sink.pending.length, 1);
  });

  it("saves with the watermark where each partition must be read again from", async () => {
    const sink = controlledSink();
    const p = new Pipeline(new Aggregator({ spans: false, graceMs: 0 }), sink.deps, -Infinity);
    p.onBatch([makeRecord({ startMs: W0 + 1, durationMs: 1, server })], new Msg(1, false, 4), W0 + 2);
    p.pass(new Msg(2, false, 9)); // another instance's partition: acked unread
    p.onBatch([makeRecord({ startMs: W0 + W + 1, durationMs: 1, server })], new Msg(3, false, 4), W0 + W + 2);
    p.onBatch([makeRecord({ startMs: W0 + W + 2, durationMs: 1, server })], new Msg(5, false, 7), W0 + W + 3);
    p.tick(W0 + W + 4); // closes W0 only
    sink.pending[0]!.done();
    await p.settled();
    assert.deepEqual(sink.saved, [W0 + W]);
    // seq 1 (window W0) is written; partition 4 resumes at 3, partition 7 at 5, the rest after 5
    assert.deepEqual([...sink.positions[0]!.fromSeq].sort(), [[4, 3], [7, 5]]);
    assert.equal(sink.positions[0]!.nextSeq, 6);
    assert.equal(p.counters.batchesForeign, 1);
  });

  it("skips the windows a partition's previous owner wrote, not those of other partitions", () => {
    const sink = controlledSink();
    const agg = new Aggregator({ spans: false });
    const p = new Pipeline(agg, sink.deps, W0);
    const ahead = new Msg(1, false, 2);
    const behind = new Msg(2, false, 3);
    p.onBatch([makeRecord({ startMs: W0 + 1, durationMs: 1, server })], ahead, W0 + 2, W0 + W, true);
    p.onBatch([makeRecord({ startMs: W0 + 1, durationMs: 1, server })], behind, W0 + 2, W0, true);
    assert.equal(ahead.acked, 1, "partition 2's window W0 is in InfluxDB already");
    assert.equal(agg.counters.drops.redelivered, 1);
    assert.equal(behind.acked, 0, "partition 3's window W0 is rebuilt");
    assert.equal(agg.openWindows, 1);
  });

  it("saves and acknowledges nothing once stopped", async () => {
    const sink = controlledSink();
    const p = new Pipeline(new Aggregator({ spans: false, graceMs: 0 }), sink.deps, -Infinity);
    const m = new Msg(1);
    p.onBatch([makeRecord({ startMs: W0 + 1, durationMs: 1, server })], m, W0 + 2);
    p.tick(W0 + W + 4, true);
    p.stop();
    sink.pending[0]!.done();
    await p.settled();
    assert.deepEqual(sink.saved, []);
    assert.equal(m.acked, 0);
  });
});
