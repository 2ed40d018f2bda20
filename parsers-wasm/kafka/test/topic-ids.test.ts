// Topic ids learned on one connection name the Fetch v13+ topics of another connection decoded
// by the same plugin instance (a client asks Metadata of one broker and fetches from the
// leader); ids no Metadata named stay ids; the map is bounded, oldest forgotten first.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PluginRegistry, Plugin } from "@wirescope/plugin-host";
import { findPlugin } from "../../test-support/plugins.js";
import { runChunks } from "../../test-support/vectors.js";
import { W, request, response } from "./wire.js";

const idOf = (n: number) => n.toString(16).padStart(8, "0") + "0000400080000000000000ab";

function metadataV12(corr: number, topics: number[]): { req: Buffer; resp: Buffer } {
  const req = request(3, 12, corr, "meta", true, new W(true).arr(null, () => {}).i8(0).i8(0).tags().buf());
  const resp = response(corr, true,
    new W(true).i32(0).arr([0], (w) => w.i32(0).str("b0").i32(9092).str(null).tags()).str("c").i32(0)
      .arr(topics, (w, n) => w.i16(0).str(`t${n}`).uuid(idOf(n)).i8(0).arr([], () => {}).i32(0).tags())
      .tags().buf());
  return { req, resp };
}

function fetchV13(corr: number, topics: number[]): Buffer {
  return request(1, 13, corr, "fetcher", true,
    new W(true).i32(-1).i32(500).i32(1).i32(1 << 20).i8(0).i32(0).i32(-1)
      .arr(topics, (w, n) => w.uuid(idOf(n)).arr([0], (w, p) => w.i32(p).i32(0).i64(0).i32(-1).i64(-1).i32(1 << 20).tags()).tags())
      .arr([], () => {}).str("").tags().buf());
}

function registry(): PluginRegistry {
  const reg = new PluginRegistry();
  reg.add(Plugin.fromFile(findPlugin("kafka").manifest));
  return reg;
}

test("kafka: Metadata on one connection names the topic ids of a Fetch v13 on another", () => {
  const reg = registry();
  const m = metadataV12(1, [1, 2]);
  const a = runChunks(reg, "kafka", [{ dir: 0, bytes: m.req, ts: 1000n }, { dir: 1, bytes: m.resp, ts: 2000n }]);
  assert.equal(a.records[0]?.resource, "t1,t2");
  const b = runChunks(reg, "kafka", [{ dir: 0, bytes: fetchV13(7, [2, 3]), ts: 3000n }]);
  assert.equal(b.records.length, 1);
  const r = b.records[0]!;
  assert.equal(r.operation, "Fetch");
  assert.equal(r.resource, "t2", "the id taught elsewhere is named");
  assert.deepEqual(r.attributes["kafka.topic_ids"], [idOf(3)], "the id nobody named stays an id");
  assert.equal(r.incomplete, true);
});

test("kafka: the topic id map is bounded; the oldest ids are forgotten first", () => {
  const reg = registry();
  // 3 × 3000 ids through a map of 8192: the first 808 learned are forgotten
  for (let k = 0; k < 3; k++) {
    const m = metadataV12(k + 1, Array.from({ length: 3000 }, (_, i) => k * 3000 + i));
    const res = runChunks(reg, "kafka", [{ dir: 0, bytes: m.req, ts: 1000n }, { dir: 1, bytes: m.resp, ts: 2000n }]);
    assert.equal(res.records.length, 1);
    assert.equal(res.reason, undefined);
  }
  const r = runChunks(reg, "kafka", [{ dir: 0, bytes: fetchV13(9, [0, 807, 808, 8999]), ts: 3000n }]).records[0]!;
  assert.equal(r.resource, "t808,t8999");
  assert.deepEqual(r.attributes["kafka.topic_ids"], [idOf(0), idOf(807)]);
});

test("kafka: a Metadata record hands the host the id=name pairs its instance had not known (kafka.topic_id_names)", () => {
  const reg = registry();
  const meta = (corr: number, topics: number[]) => {
    const m = metadataV12(corr, topics);
    return runChunks(reg, "kafka", [{ dir: 0, bytes: m.req, ts: 1000n }, { dir: 1, bytes: m.resp, ts: 2000n }]).records[0]!;
  };
  assert.deepEqual(meta(1, [41, 42]).attributes["kafka.topic_id_names"], [`${idOf(41)}=t41`, `${idOf(42)}=t42`]);
  // known already: nothing new to share; only the new id of a later response
  assert.equal(meta(2, [41, 42]).attributes["kafka.topic_id_names"], undefined);
  assert.deepEqual(meta(3, [42, 43]).attributes["kafka.topic_id_names"], [`${idOf(43)}=t43`]);
});
