// Messages larger than what the decoder buffers, fed the way the host feeds them (chunks of up
// to 1 MiB) with a partial header already queued: the stream must not hit the queue limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PluginRegistry, Plugin } from "@wirescope/common";
import { findPlugin } from "../../test-support/plugins.js";
import { runChunks } from "../../test-support/vectors.js";
import { W, request, response } from "./wire.js";

test("kafka: a 3 MiB Produce request split after 3 bytes, then 1 MiB chunks", () => {
  const reg = new PluginRegistry();
  reg.add(Plugin.fromFile(findPlugin("kafka").manifest));
  const req = request(0, 7, 9, "big-producer", false, new W().str(null).i16(-1).i32(30000).arr(["bulk"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).bytes(Buffer.alloc(3 << 20, 0x61)))).buf());
  const resp = response(9, false, new W().arr(["bulk"], (w, t) => w.str(t).arr([0], (w, p) => w.i32(p).i16(0).i64(0).i64(-1).i64(0))).i32(0).buf());
  const chunks: { dir: 0 | 1; bytes: Uint8Array; ts: bigint }[] = [{ dir: 0, bytes: req.subarray(0, 3), ts: 1000n }];
  for (let o = 3; o < req.length; o += 1 << 20) chunks.push({ dir: 0, bytes: req.subarray(o, o + (1 << 20)), ts: 2000n });
  chunks.push({ dir: 1, bytes: resp, ts: 3000n });
  const res = runChunks(reg, "kafka", chunks);
  assert.equal(res.reason, undefined, JSON.stringify(res.counters));
  assert.equal(res.records.length, 1);
  const r = res.records[0]!;
  assert.equal(r.operation, "Produce");
  assert.equal(r.resource, "bulk");
  assert.equal(r.status, 0);
  assert.equal(r.reqBytes, req.length);
  assert.equal(r.durationNs, "2000");
});
