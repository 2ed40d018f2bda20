import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { RecordBatchSchema, RecordSchema, EndpointSchema, ProcessInfoSchema, AttributeValueSchema, StringListSchema, Role } from "@wirescope/common";
import { decodeRecordBatch, DecodeError } from "./decode.js";
import type { RecordView } from "./record-view.js";
import { makeRecord } from "./testing.js";

/** The RecordView projection of any record-like object, for comparison. */
function project(r: RecordView) {
  const ep = (e: RecordView["client"]) =>
    e && { address: e.address, port: e.port, service: e.service, node: e.node, process: e.process && { pid: e.process.pid, name: e.process.name, container: e.process.container, workload: e.process.workload, namespace: e.process.namespace } };
  return {
    protocol: r.protocol,
    startNs: r.startNs,
    durationNs: r.durationNs,
    operation: r.operation,
    resource: r.resource,
    status: r.status,
    error: r.error,
    requestBytes: r.requestBytes,
    responseBytes: r.responseBytes,
    incomplete: r.incomplete,
    trace: r.trace && { traceId: [...r.trace.traceId], parentSpanId: [...r.trace.parentSpanId] },
    attributes: Object.fromEntries(Object.entries(r.attributes).map(([k, v]) => [k, JSON.stringify(v.value, (k, x) => (k === "$typeName" || k === "$unknown" ? undefined : typeof x === "bigint" ? `${x}n` : x))])),
    client: ep(r.client),
    server: ep(r.server),
    connKey: r.connKey,
    role: r.role,
    tid: r.tid,
    node: r.node,
    observedFraction: r.observedFraction || 0,
  };
}

function sample() {
  const a = makeRecord({ startMs: 1_700_000_000_123.456, durationMs: 12.5, resource: "/ünïcode/π", status: 503, error: true, server: { service: "api", address: "10.0.0.2", port: 8080, pid: 4242, name: "node" }, client: { address: "10.0.0.1", port: 51234 }, tid: 77, connKey: 2n ** 63n + 5n, traceId: "0af7651916cd43dd8448eb211c80319c", parentSpanId: "b7ad6b7169203331" });
  a.attributes["http.request.method"] = create(AttributeValueSchema, { value: { case: "stringValue", value: "GET" } });
  a.attributes["n"] = create(AttributeValueSchema, { value: { case: "intValue", value: -42n } });
  a.attributes["b"] = create(AttributeValueSchema, { value: { case: "boolValue", value: true } });
  a.attributes["d"] = create(AttributeValueSchema, { value: { case: "doubleValue", value: 3.25 } });
  a.attributes["l"] = create(AttributeValueSchema, { value: { case: "stringList", value: create(StringListSchema, { values: ["x", "y"] }) } });
  a.status = -1n;
  a.requestBytes = 123456789012n;
  a.server!.process!.workload = "checkout";
  a.server!.process!.namespace = "shop";
  const b = makeRecord({ startMs: 1, durationMs: 0, protocol: "mysql", operation: "", resource: "", role: "client" });
  b.client = undefined;
  b.server = undefined;
  b.trace = undefined;
  b.status = undefined;
  return [a, b];
}

describe("decodeRecordBatch", () => {
  it("reads a sampled record's observed fraction (a float) as protobuf-es does", () => {
    const [a, b] = sample();
    a!.observedFraction = 0.375;
    const bytes = toBinary(RecordBatchSchema, create(RecordBatchSchema, { records: [a!, b!] }));
    const got = decodeRecordBatch(bytes);
    assert.deepEqual(got.map(project), fromBinary(RecordBatchSchema, bytes).records.map(project));
    assert.deepEqual(got.map((r) => r.observedFraction), [0.375, 0]);
  });

  it("reads what protobuf-es reads", () => {
    const batch = create(RecordBatchSchema, { node: "n", parserId: "p", records: sample(), partition: 3, batchSeq: 9n });
    const bytes = toBinary(RecordBatchSchema, batch);
    const ref = fromBinary(RecordBatchSchema, bytes).records.map(project);
    assert.deepEqual(decodeRecordBatch(bytes).map(project), ref);
  });

  it("merges concatenated encodings of one record like protobuf (plugin fields, then host fields)", () => {
    const plugin = create(RecordSchema, { protocol: "http1", operation: "GET", resource: "/a", startNs: 5n, durationNs: 7n, server: create(EndpointSchema, { port: 80 }) });
    const host = create(RecordSchema, { role: Role.SERVER, tid: 9, server: create(EndpointSchema, { address: "1.2.3.4", process: create(ProcessInfoSchema, { pid: 3 }) }), node: "n1" });
    const rec = new Uint8Array([...toBinary(RecordSchema, plugin), ...toBinary(RecordSchema, host)]);
    // RecordBatch field 3 (records), length-delimited, holding the concatenation.
    const len: number[] = [];
    let n = rec.length;
    while (n > 127) {
      len.push((n & 127) | 128);
      n >>>= 7;
    }
    len.push(n);
    const bytes = new Uint8Array([0x1a, ...len, ...rec]);
    const ref = fromBinary(RecordBatchSchema, bytes).records.map(project);
    const got = decodeRecordBatch(bytes).map(project);
    assert.deepEqual(got, ref);
    assert.equal(got[0]!.server!.port, 80);
    assert.equal(got[0]!.server!.address, "1.2.3.4");
  });

  it("refuses truncated input with DecodeError and never anything else on garbage", () => {
    const bytes = toBinary(RecordBatchSchema, create(RecordBatchSchema, { records: sample() }));
    for (let cut = 1; cut < bytes.length; cut += 7) {
      try {
        decodeRecordBatch(bytes.subarray(0, cut));
      } catch (e) {
        assert.ok(e instanceof DecodeError, String(e));
      }
    }
    let s = 12345;
    for (let i = 0; i < 2000; i++) {
      const junk = Uint8Array.from({ length: 1 + (i % 200) }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 24));
      let records: RecordView[] = [];
      try {
        records = decodeRecordBatch(junk);
      } catch (e) {
        assert.ok(e instanceof DecodeError, String(e));
      }
      for (const r of records) Object.keys(r.attributes);
    }
  });

  it("builds attributes when first read, and what decoded without an error reads without one", () => {
    const bytes = toBinary(RecordBatchSchema, create(RecordBatchSchema, { records: sample() }));
    let s = 777;
    let read = 0;
    for (let i = 0; i < 3000; i++) {
      // The valid batch with one to three bytes changed.
      const b = bytes.slice();
      for (let k = 0; k <= i % 3; k++) b[((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % b.length] = s >>> 24;
      let records: RecordView[] = [];
      try {
        records = decodeRecordBatch(b);
      } catch (e) {
        assert.ok(e instanceof DecodeError, String(e));
        continue;
      }
      const ref = (() => {
        try {
          return fromBinary(RecordBatchSchema, b).records.map(project);
        } catch {
          return undefined;
        }
      })();
      const got = records.map(project); // reads the attributes
      read += got.reduce((n, r) => n + Object.keys(r.attributes).length, 0);
      if (ref) assert.deepEqual(got.map((r) => r.attributes), ref.map((r) => r.attributes), `variant ${i}`);
    }
    assert.ok(read > 1000, `attributes read from decoded variants: ${read}`);
  });
});
