// Benchmark traffic for the decode-only benchmark (test-support/decode.bench.ts): one client
// connection as a producer-consumer service uses it, in the versions kafkajs speaks — Produce v7
// with 1 KiB record batches (10 records), Fetch v11 returning 4 KiB of records (four zstd
// batches of 25), Heartbeat v3, OffsetCommit v5 and a periodic Metadata v6.
import type { TrafficSample } from "../../test-support/traffic.js";
import type { CapturedChunk } from "../../test-support/relay.js";
import { W, request, response, recordBatch } from "./wire.js";

export async function traffic(n = 20000): Promise<TrafficSample[]> {
  const chunks: CapturedChunk[] = [];
  let ts = 1_700_000_000_000_000_000n;
  const push = (dir: 0 | 1, bytes: Buffer) => chunks.push({ dir, bytes, tsNs: (ts += dir ? 300_000n : 20_000n) });
  const batch = recordBatch(10, 0, { payload: 1024 - 61 });
  const fetched = Buffer.concat([0, 1, 2, 3].map((k) => recordBatch(25, 4, { payload: 1024 - 61, baseOffset: 25 * k })));
  const id = "order-service-1";
  for (let i = 0; i < n; i++) {
    const corr = i + 1;
    switch (i % 5) {
      case 0:
      case 1:
        push(0, request(0, 7, corr, id, false, new W().str(null).i16(-1).i32(30000).arr(["orders"], (w, t) => w.str(t).arr([i % 3], (w, p) => w.i32(p).bytes(batch))).buf()));
        push(1, response(corr, false, new W().arr(["orders"], (w, t) => w.str(t).arr([i % 3], (w, p) => w.i32(p).i16(0).i64(i).i64(-1).i64(0))).i32(0).buf()));
        break;
      case 2:
        push(0, request(1, 11, corr, id, false, new W().i32(-1).i32(500).i32(1).i32(10 << 20).i8(0).i32(0).i32(-1).arr(["payments"], (w, t) => w.str(t).arr([0, 1], (w, p) => w.i32(p).i32(-1).i64(i).i64(-1).i32(1 << 20))).arr([], () => {}).str("").buf()));
        push(1, response(corr, false, new W().i32(0).i16(0).i32(0).arr(["payments"], (w, t) => w.str(t).arr([0, 1], (w, p) => w.i32(p).i16(0).i64(i + 10).i64(i + 10).i64(0).arr([], () => {}).i32(-1).bytes(p ? null : fetched))).buf()));
        break;
      case 3:
        push(0, request(12, 3, corr, id, false, new W().str("billing").i32(3).str("member-7f3a").str(null).buf()));
        push(1, response(corr, false, new W().i32(0).i16(i % 97 === 3 ? 27 : 0).buf()));
        break;
      default:
        if (i % 50 === 4) {
          push(0, request(3, 6, corr, id, false, new W().arr(["orders", "payments"], (w, t) => w.str(t)).i8(1).buf()));
          push(1, response(corr, false, new W().i32(0).arr([0], (w, nd) => w.i32(nd).str("broker-0").i32(9092).str(null)).str("c1").i32(0).arr(["orders", "payments"], (w, t) => w.i16(0).str(t).i8(0).arr([0, 1, 2], (w, p) => w.i16(0).i32(p).i32(0).arr([0], (w, r) => w.i32(r)).arr([0], (w, r) => w.i32(r)).arr([], () => {}))).buf()));
        } else {
          push(0, request(8, 5, corr, id, false, new W().str("billing").i32(3).str("member-7f3a").arr(["payments"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).i64(i).str(""))).buf()));
          push(1, response(corr, false, new W().i32(0).arr(["payments"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).i16(0))).buf()));
        }
    }
  }
  return [{ name: "kafka produce/fetch/heartbeat/commit", plugin: "kafka", connections: [chunks], pairs: n }];
}
