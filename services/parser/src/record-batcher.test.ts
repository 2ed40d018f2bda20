import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { clearField, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { RecordBatchSchema, RecordSchema, recordsOf } from "@wirescope/wire";
import { everyField } from "@wirescope/wire/test-support/wire";
import { BATCH_FIELDS, RecordBatcher, encodeRecordBatch, servicePartition, whole } from "./record-batcher.js";
import { appendHostFields, encodeHostFields } from "./record-bytes.js";
import { Role } from "@wirescope/wire";

const rec = (resource: string) => whole(toBinary(RecordSchema, create(RecordSchema, { protocol: "http", resource })));

describe("RecordBatcher", () => {
  it("groups records by the server's service partition and encodes a valid RecordBatch", () => {
    const b = new RecordBatcher("node-a", "parser-1", 64);
    b.add("web:80", rec("/a"));
    b.add("db:3306", rec("q"));
    b.add("web:80", rec("/b"));
    const out = b.drain();
    assert.equal(out.length, servicePartition("web:80", 64) === servicePartition("db:3306", 64) ? 1 : 2);
    const web = out.find((o) => o.partition === servicePartition("web:80", 64))!;
    const batch = fromBinary(RecordBatchSchema, web.bytes);
    assert.equal(batch.node, "node-a");
    assert.equal(batch.parserId, "parser-1");
    assert.equal(batch.partition, web.partition);
    assert.ok(batch.batchSeq > 0n);
    assert.deepEqual(
      batch.records.filter((r) => r.protocol === "http").map((r) => r.resource).filter((r) => r.startsWith("/")),
      ["/a", "/b"],
    );
    assert.equal(b.heldBytes, 0);
    assert.deepEqual(b.drain(), []);
  });

  it("closes a batch when it reaches the byte limit", () => {
    const b = new RecordBatcher("n", "p", 4, 100);
    let full;
    for (let i = 0; i < 50 && !full; i++) full = b.add("svc", rec(`/${"x".repeat(20)}${i}`));
    assert.ok(full);
    assert.ok(full.records >= 3 && full.records <= 5, `records ${full.records}`);
    assert.equal(fromBinary(RecordBatchSchema, full.bytes).records.length, full.records);
  });
});

describe("encodeRecordBatch", () => {
  it("writes plugin bytes, host fields and tid as one Record each", () => {
    const b = new RecordBatcher("n", "p", 8);
    const suffix = encodeHostFields({ connKey: 9n, role: Role.CLIENT, node: "n" });
    const plugin = toBinary(RecordSchema, create(RecordSchema, { protocol: "redis", operation: "GET" }));
    b.add("svc", { bytes: plugin, suffix, tid: 300 });
    b.add("svc", { bytes: plugin, suffix, tid: 0 });
    const [batch] = b.drain();
    const recs = recordsOf(fromBinary(RecordBatchSchema, batch!.bytes));
    assert.deepEqual(recs.map((r) => [r.operation, r.connKey, r.role, r.tid, r.connection]), [["GET", 9n, Role.CLIENT, 300, 0], ["GET", 9n, Role.CLIENT, 0, 0]]);
  });

  it("writes each connection's host fields once per batch, and each record names its own", () => {
    const b = new RecordBatcher("n", "p", 1);
    const host = (port: number) => encodeHostFields({ client: { address: "10.0.0.1", port, node: "", service: "" }, server: { address: "10.0.0.2", port: 80, node: "n", service: "web:80" }, connKey: BigInt(port), role: Role.SERVER, node: "n", tlsLibrary: port === 2 ? "openssl" : undefined });
    const [one, two] = [host(1), host(2)];
    const plugin = (path: string) => toBinary(RecordSchema, create(RecordSchema, { protocol: "http1", operation: "GET", resource: path }));
    const order = [one, two, two, one, one, two];
    for (const [k, suffix] of order.entries()) b.add("svc", { bytes: plugin(`/${k}`), suffix, tid: k + 1 });
    b.add("svc", whole(plugin("/whole")));
    const [batch] = b.drain();
    const m = fromBinary(RecordBatchSchema, batch!.bytes);
    assert.equal(m.connections.length, 2);
    assert.deepEqual(m.records.map((r) => r.connection), [1, 2, 2, 1, 1, 2, 0]);
    // four of the six suffixes not repeated: each cost its bytes, a reference costs 3
    const joined = encodeRecordBatch("n", "p", 0, 1n, [...order.map((suffix, k) => whole(appendHostFields(plugin(`/${k}`), suffix, k + 1))), whole(plugin("/whole"))]);
    assert.equal(fromBinary(RecordBatchSchema, joined).connections.length, 0);
    assert.ok(batch!.bytes.length <= joined.length - 4 * Math.min(one.length, two.length) + 6 * 3, `${batch!.bytes.length} bytes against ${joined.length} with each record carrying its suffix`);
    // the same records as when each carried its connection's fields (appendHostFields)
    const each = order.map((suffix, k) => fromBinary(RecordSchema, appendHostFields(plugin(`/${k}`), suffix, k + 1)));
    assert.deepEqual(recordsOf(m).map((r) => toBinary(RecordSchema, r)), [...each, fromBinary(RecordSchema, plugin("/whole"))].map((r) => toBinary(RecordSchema, r)));
  });
});

describe("BATCH_FIELDS", () => {
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

  it("encodeRecordBatch writes every field of proto/ as protobuf-es writes it", () => {
    // every field set (one added to proto/ too: the batch bytes would then differ); each record
    // holds what a plugin writes and the tid, and names its connection entry, which holds the rest
    const m = everyField(RecordBatchSchema);
    assert.deepEqual(Object.keys(BATCH_FIELDS), RecordBatchSchema.fields.map((f) => f.localName));
    const records = m.records.map((r, k) => {
      for (const f of ["client", "server", "connKey", "role", "node", "observedFraction", "connection", "tid"] as const) clearField(r, RecordSchema.field[f]);
      const parts = { bytes: toBinary(RecordSchema, r), suffix: toBinary(RecordSchema, m.connections[k]!), tid: 40 + k };
      r.tid = 40 + k;
      r.connection = k + 1;
      return parts;
    });
    assert.equal(hex(encodeRecordBatch(m.node, m.parserId, m.partition, m.batchSeq, records)), hex(toBinary(RecordBatchSchema, m)));
  });

  it("writes a record's tid after its plugin bytes as protobuf-es writes the field", () => {
    for (const tid of [1, 127, 128, 300, 2 ** 32 - 1]) {
      const plugin = create(RecordSchema, { protocol: "http", startNs: 5n, operation: "GET", attributes: { a: { value: { case: "intValue", value: -3n } } } });
      const bytes = encodeRecordBatch("n", "p", 1, 2n, [{ bytes: toBinary(RecordSchema, plugin), suffix: new Uint8Array(0), tid }]);
      assert.equal(hex(bytes), hex(toBinary(RecordBatchSchema, create(RecordBatchSchema, { node: "n", parserId: "p", partition: 1, batchSeq: 2n, records: [{ ...plugin, tid }] }))), `tid ${tid}`);
    }
  });
});
