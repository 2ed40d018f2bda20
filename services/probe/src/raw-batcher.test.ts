import { test } from "node:test";
import assert from "node:assert/strict";
import { RawBatcher } from "./raw-batcher.js";
import { ProcessCache } from "./process-info.js";
import { connPartition } from "./partition.js";
import type { ConnRecord, DataRecord } from "./events.js";
import { ConnKind } from "@wirescope/common";

const conn = (key: bigint, kind: "open" | "close"): ConnRecord => ({
  kind, connKey: key, tgid: process.pid, tid: process.pid, tsMono: 1000n, cgroupId: 1n, family: 4,
  localAddress: "127.0.0.1", localPort: 40000, remoteAddress: "127.0.0.1", remotePort: 80, role: 1, inferred: false, tls: false, tlsLibrary: "", fd: 3,
  comm: "node", sentBytes: 0n, recvBytes: 0n,
});
const data = (key: bigint, seq: bigint, bytes: number): DataRecord => ({
  connKey: key, tgid: process.pid, tid: process.pid, tsMono: 2000n, direction: 1, seq, originalLength: bytes,
  payload: new Uint8Array(bytes), syscall: 2, fd: 3,
});

function batcher(maxBatchBytes = 1 << 20) {
  return new RawBatcher({ node: "n1", probeId: "p1", partition: (k) => connPartition("n1", k, 8), toWall: (t) => t + 1_000_000n, processes: new ProcessCache(), maxBatchBytes });
}

test("RawBatcher.build: one partition per connection; opens before data before closes; batch_seq per partition", () => {
  const b = batcher();
  const keys = [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n];
  const out = b.build({ conns: [...keys.map((k) => conn(k, "close")), ...keys.map((k) => conn(k, "open"))], data: keys.map((k) => data(k, 0n, 10)) });
  for (const { partition, batch } of out) {
    assert.equal(batch.partition, partition);
    assert.equal(batch.node, "n1");
    assert.equal(batch.probeId, "p1");
    assert.equal(batch.batchSeq, 1n);
    for (const c of batch.conns) assert.equal(connPartition("n1", c.connKey, 8), partition);
    for (const d of batch.data) assert.equal(connPartition("n1", d.connKey, 8), partition);
    const kinds = batch.conns.map((c) => c.kind);
    assert.deepEqual(kinds, [...kinds].sort((x, y) => x - y), "opens first, closes last");
  }
  const all = out.flatMap((o) => o.batch.conns);
  assert.equal(all.length, 18);
  const open = all.find((c) => c.kind === ConnKind.OPEN)!;
  assert.equal(open.process?.pid, process.pid);
  assert.equal(open.processName, open.process?.name);
  assert.equal(open.timestampNs, 1_001_000n, "monotonic → wall clock");
  const again = b.build({ conns: [], data: [data(1n, 10n, 5)] });
  assert.equal(again.length, 1);
  assert.equal(again[0].batch.batchSeq, 2n);
});

test("RawBatcher.build: splits a partition's batch by size; drops go on the next batch once", () => {
  const b = batcher(10_000);
  b.addDrops({ "kernel.ringbuf_full": 3, "user.js_behind": 0 });
  const out = b.build({ conns: [], data: Array.from({ length: 10 }, (_, i) => data(42n, BigInt(i * 4000), 4000)) });
  assert.ok(out.length >= 4, `split into ${out.length}`);
  assert.deepEqual(out.map((o) => o.batch.batchSeq), out.map((_, i) => BigInt(i + 1)));
  assert.deepEqual(out[0].batch.drops, { "kernel.ringbuf_full": 3n });
  assert.deepEqual(out.slice(1).map((o) => Object.keys(o.batch.drops).length), out.slice(1).map(() => 0));
  assert.equal(out.flatMap((o) => o.batch.data).length, 10);
  assert.deepEqual(b.build({ conns: [], data: [data(42n, 0n, 1)] })[0].batch.drops, {});
});

test("connPartition: stable, in range, spread", () => {
  const seen = new Set<number>();
  for (let k = 1n; k <= 1000n; k++) {
    const p = connPartition("node-a", k, 64);
    assert.ok(p >= 0 && p < 64);
    assert.equal(connPartition("node-a", k, 64), p);
    seen.add(p);
  }
  assert.equal(seen.size, 64);
});
