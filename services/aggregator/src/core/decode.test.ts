import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { RecordBatchSchema, RecordSchema, EndpointSchema, ProcessInfoSchema, AttributeValueSchema, StringListSchema, Role, coveredFields, recordsOf } from "@wirescope/wire";
import { everyField, withoutField } from "@wirescope/wire/test-support/wire";
import { decodeRecordBatch, DecodeError, LEAN_FIELDS } from "./decode.js";
import { RecordBatchSlots, type RecordSlot } from "./record-slot.js";
import { makeRecord } from "../test-support/records.js";

/** Every field the core reads from a slot, as plain data for comparison. */
function project(r: RecordSlot) {
  const ep = (e: RecordSlot["client"]) =>
    e && { address: e.address, port: e.port, service: e.service, node: e.node, process: e.process && { pid: e.process.pid, name: e.process.name, container: e.process.container, workload: e.process.workload, namespace: e.process.namespace } };
  return {
    protocol: r.protocol,
    hasStart: r.hasStart,
    startUs: r.startUs,
    startSubNs: r.startSubNs,
    startNsNum: r.startNsNum,
    durUs: r.durUs,
    durNsNum: r.durNsNum,
    operation: r.operation,
    resource: r.resource,
    hasStatus: r.hasStatus,
    status: r.status,
    error: r.error,
    requestBytes: r.requestBytes,
    responseBytes: r.responseBytes,
    incomplete: r.incomplete,
    traceHex: r.traceHex,
    parentHex: r.parentHex,
    attributes: Object.fromEntries(Object.entries(r.attributes).map(([k, v]) => [k, JSON.stringify(v.value, (k, x) => (k === "$typeName" || k === "$unknown" ? undefined : typeof x === "bigint" ? `${x}n` : x))])),
    client: ep(r.client),
    server: ep(r.server),
    connKeyNum: r.connKeyNum,
    role: r.role,
    tid: r.tid,
    node: r.node,
    observedFraction: r.observedFraction,
    tls: r.tls,
  };
}

/** The batch's records through the lean decoder. */
const lean = (bytes: Uint8Array) => slotsOf(decodeRecordBatch(bytes));
/** The batch's records through protobuf-es (connection entries merged by recordsOf), then into slots (the reference). */
const reference = (bytes: Uint8Array) => slotsOf(RecordBatchSlots.fromViews(recordsOf(fromBinary(RecordBatchSchema, bytes))));
const slotsOf = (b: RecordBatchSlots) => b.slots.slice(0, b.length);

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
    const got = lean(bytes);
    assert.deepEqual(got.map(project), reference(bytes).map(project));
    assert.deepEqual(got.map((r) => r.observedFraction), [0.375, 0]);
  });

  it("knows a record's tls = true without building its attributes, and only that attribute as such", () => {
    const recs = [0, 1, 2, 3, 4].map((i) => makeRecord({ startMs: 1_700_000_000_000 + i, durationMs: 1 }));
    const bool = (v: boolean) => create(AttributeValueSchema, { value: { case: "boolValue", value: v } });
    recs[0]!.attributes["tls"] = bool(true);
    recs[0]!.attributes["tls.library"] = create(AttributeValueSchema, { value: { case: "stringValue", value: "openssl" } });
    recs[1]!.attributes["tls"] = bool(false);
    recs[2]!.attributes["tls"] = create(AttributeValueSchema, { value: { case: "stringValue", value: "true" } });
    recs[3]!.attributes["tlx"] = bool(true);
    recs[3]!.attributes["tls2"] = bool(true);
    const bytes = toBinary(RecordBatchSchema, create(RecordBatchSchema, { records: recs }));
    const got = lean(bytes);
    assert.deepEqual(got.map((r) => r.tls), [true, false, false, false, false]);
    assert.deepEqual(got.map(project), reference(bytes).map(project), "as protobuf-es reads it, the attributes themselves unchanged");
  });

  it("reads what protobuf-es reads", () => {
    const batch = create(RecordBatchSchema, { node: "n", parserId: "p", records: sample(), partition: 3, batchSeq: 9n });
    const bytes = toBinary(RecordBatchSchema, batch);
    const ref = reference(bytes).map(project);
    assert.deepEqual(lean(bytes).map(project), ref);
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
    const ref = reference(bytes).map(project);
    const got = lean(bytes).map(project);
    assert.deepEqual(got, ref);
    assert.equal(got[0]!.server!.port, 80);
    assert.equal(got[0]!.server!.address, "1.2.3.4");
  });

  it("merges each connection entry into the records that name it, as recordsOf does, batch after batch", () => {
    // entries as the parser writes them: host fields only (the fast merge), one with a TLS mark and
    // a sampled fraction; a third also holds a plugin field (merged by reading it into the record)
    const ends = (port: number) => ({
      client: create(EndpointSchema, { address: "10.0.0.1", port }),
      server: create(EndpointSchema, { address: "10.0.0.2", port: 443, service: "api", process: create(ProcessInfoSchema, { pid: 7, name: "node", workload: "api" }) }),
    });
    const tls = { tls: create(AttributeValueSchema, { value: { case: "boolValue", value: true } }), "tls.library": create(AttributeValueSchema, { value: { case: "stringValue", value: "openssl" } }) };
    const entries = [
      create(RecordSchema, { ...ends(5001), connKey: 11n, role: Role.CLIENT, node: "n1" }),
      create(RecordSchema, { ...ends(5002), connKey: 2n ** 63n + 12n, role: Role.SERVER, node: "n2", observedFraction: 0.25, attributes: tls }),
      create(RecordSchema, { ...ends(5003), connKey: 13n, role: Role.SERVER, node: "n3", operation: "from-entry" }),
    ];
    const plugin = (i: number, connection: number) => {
      const r = create(RecordSchema, { protocol: "http1", operation: "GET", resource: `/r${i}`, startNs: 1_000_000n + BigInt(i), durationNs: 5n, tid: i, connection });
      r.attributes["http.request.method"] = create(AttributeValueSchema, { value: { case: "stringValue", value: "GET" } });
      return r;
    };
    const own = plugin(9, 1);
    own.client = create(EndpointSchema, { address: "192.168.0.9", port: 9, node: "own" }); // an end of its own: merged by reading
    const slots = new RecordBatchSlots();
    const batches = [
      create(RecordBatchSchema, { records: [plugin(1, 1), plugin(2, 2), plugin(3, 1), plugin(4, 0), plugin(5, 3), own, plugin(6, 2)], connections: entries }),
      // the next batch: other entries in the first positions, reusing the slots of the first
      create(RecordBatchSchema, { records: [plugin(7, 2), plugin(8, 1)], connections: [entries[2]!, entries[0]!] }),
    ];
    for (const b of batches) {
      const bytes = toBinary(RecordBatchSchema, b);
      const got = slotsOf(decodeRecordBatch(bytes, slots)).map(project);
      assert.deepEqual(got, reference(bytes).map(project));
    }
    const first = slotsOf(decodeRecordBatch(toBinary(RecordBatchSchema, batches[0]!), slots)).map(project);
    assert.deepEqual(first.map((r) => [r.client?.port, r.role, r.node, r.tls, r.observedFraction]), [
      [5001, Role.CLIENT, "n1", false, 0], [5002, Role.SERVER, "n2", true, 0.25], [5001, Role.CLIENT, "n1", false, 0], [undefined, 0, "", false, 0],
      [5003, Role.SERVER, "n3", false, 0], [5001, Role.CLIENT, "n1", false, 0], [5002, Role.SERVER, "n2", true, 0.25],
    ]);
    assert.equal(first[4]!.operation, "from-entry", "the entry's field follows the record's, as in protobuf");
    assert.equal(first[5]!.client!.node, "own", "a field the entry does not set stays the record's");
    assert.deepEqual(Object.keys(first[1]!.attributes).sort(), ["http.request.method", "tls", "tls.library"]);
    // fresh slots, the second entry named before the first (a hand-made batch; the parser numbers in first-seen order)
    const backwards = toBinary(RecordBatchSchema, create(RecordBatchSchema, { records: [plugin(1, 2), plugin(2, 1), plugin(3, 2)], connections: entries }));
    assert.deepEqual(slotsOf(decodeRecordBatch(backwards)).map(project), reference(backwards).map(project));
    // an entry the batch does not have: malformed
    const bad = toBinary(RecordBatchSchema, create(RecordBatchSchema, { records: [plugin(1, 4)], connections: entries }));
    assert.throws(() => decodeRecordBatch(bad), DecodeError);
    assert.throws(() => recordsOf(fromBinary(RecordBatchSchema, bad)), /names connection 4 of a batch that has 3/);
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
      let records: RecordSlot[] = [];
      try {
        records = lean(junk);
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
      let records: RecordSlot[] = [];
      try {
        records = lean(b);
      } catch (e) {
        assert.ok(e instanceof DecodeError, String(e));
        continue;
      }
      const ref = (() => {
        try {
          return reference(b).map(project);
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

  it("splits 64-bit fields into the numbers the BigInt arithmetic gives, at every magnitude", () => {
    const values = [1n, 999n, 1000n, 1001n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 53n + 999n, (2n ** 21n) << 32n, ((2n ** 21n) << 32n) - 1n,
      1_764_600_000_123_456_789n, 8_999_999_999_999_999n, 9_007_199_254_739_999n, 4_503_599_627_369_999n, (2n ** 30n) << 32n, ((2n ** 30n) << 32n) - 1n, ((2n ** 30n) << 32n) + 12_345n, 2n ** 63n + 5n, 2n ** 64n - 1n];
    const records = values.map((v, i) =>
      create(RecordSchema, { protocol: "http", startNs: v, durationNs: values[values.length - 1 - i]!, connKey: v, requestBytes: v, responseBytes: v, status: BigInt.asIntN(64, i % 2 ? -v : v - 1n), role: Role.SERVER }));
    const bytes = toBinary(RecordBatchSchema, create(RecordBatchSchema, { records }));
    const got = lean(bytes).map(project);
    assert.deepEqual(got, reference(bytes).map(project));
    // The reference itself, from the BigInts.
    const last = got[got.length - 1]!;
    assert.equal(last.startUs, Number((2n ** 64n - 1n) / 1000n));
    assert.equal(last.startSubNs, 615);
    assert.equal(got[1]!.status, -999);
  });

  it("leaves nothing of one batch in the slots the next one is decoded into", () => {
    const [a] = sample();
    a!.observedFraction = 0.5;
    a!.incomplete = true;
    const full = toBinary(RecordBatchSchema, create(RecordBatchSchema, { records: [a!, a!] }));
    const bare = toBinary(RecordBatchSchema, create(RecordBatchSchema, { records: [create(RecordSchema, { protocol: "redis", startNs: 7n })] }));
    const slots = new RecordBatchSlots();
    decodeRecordBatch(full, slots);
    for (const r of slotsOf(slots)) Object.keys(r.attributes);
    assert.deepEqual(slotsOf(decodeRecordBatch(bare, slots)).map(project), reference(bare).map(project));
    assert.equal(slots.length, 1);
  });

  it("reads every field LEAN_FIELDS says it reads, as protobuf-es does, and only those", () => {
    // every field of proto/ set (a field added there is set too); the parent span id at the 8 bytes it has
    const eight = (m: string, f: string) => (m === "wirescope.v1.TraceContext" && f === "parentSpanId" ? Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) : undefined);
    const paths: [string, string, boolean][] = [];
    const place = (prefix: string, table: { readonly [f: string]: string }) => {
      const read = new Set(coveredFields(table));
      for (const f of Object.keys(table)) paths.push([`${prefix}${f}`, table[f]!, read.has(f)]);
    };
    place("", LEAN_FIELDS.Record);
    place("trace.", LEAN_FIELDS.TraceContext);
    for (const end of ["client.", "server."]) {
      place(end, LEAN_FIELDS.Endpoint);
      place(`${end}process.`, LEAN_FIELDS.ProcessInfo);
    }
    // the record names a connection entry that adds one attribute, so clearing `connection` shows too
    const entry = create(RecordSchema, { attributes: { "from-entry": { value: { case: "stringValue", value: "e" } } } });
    const batchOf = (r: ReturnType<typeof everyField<typeof RecordSchema>>) => toBinary(RecordBatchSchema, create(RecordBatchSchema, { records: [r], connections: [entry] }));
    const own = (m: string, f: string) => (m === "wirescope.v1.Record" && f === "connection" ? 1 : eight(m, f));
    for (const c of AttributeValueSchema.oneofs[0]!.fields) {
      const full = everyField(RecordSchema, { value: own, oneof: (_, m) => m.find((f) => f.localName === c.localName)! });
      const bytes = batchOf(full);
      const got = lean(bytes).map(project);
      assert.deepEqual(got, reference(bytes).map(project), `attribute ${c.localName}`);
      assert.deepEqual(Object.keys(got[0]!.attributes).length, 2, "the record's attribute and the entry's");
      for (const [path, use, read] of paths) {
        const b = batchOf(withoutField(RecordSchema, full, path));
        const cut = lean(b).map(project);
        assert.deepEqual(cut, reference(b).map(project), `${path}: as protobuf-es reads it`);
        if (read) assert.notDeepEqual(cut, got, `${path} is ${use}: clearing it changes the slot`);
        else assert.deepEqual(cut, got, `${path} is ${use}`);
      }
    }
    // a batch's own fields: only its records and connection entries count
    const whole = everyField(RecordBatchSchema, { value: (m, f) => (m === "wirescope.v1.Record" && f === "connection" ? 2 : eight(m, f)) });
    assert.equal(whole.records.length, 2);
    assert.deepEqual(lean(toBinary(RecordBatchSchema, whole)).map(project), reference(toBinary(RecordBatchSchema, whole)).map(project));
    assert.deepEqual(coveredFields(LEAN_FIELDS.RecordBatch), ["records", "connections"]);
  });
});
