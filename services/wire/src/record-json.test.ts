import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { RecordSchema, AttributeValueSchema, EndpointSchema, TraceContextSchema, StringListSchema } from "./gen/wirescope/v1/record_pb.js";
import { recordToJson, recordToJsonLine, RecordWireError, RECORD_JSON_FIELDS } from "./record-json.js";
import { coveredFields } from "./coverage.js";
import { everyField, withoutField } from "./test-support/wire.js";

const sv = (v: string) => create(AttributeValueSchema, { value: { case: "stringValue", value: v } });
const iv = (v: bigint) => create(AttributeValueSchema, { value: { case: "intValue", value: v } });

describe("recordToJson", () => {
  test("the NDJSON contract: key order, types, endpoints", () => {
    const r = create(RecordSchema, {
      protocol: "http2",
      startNs: 1700000000123456789n,
      durationNs: 42n,
      operation: "GET",
      resource: "/hello",
      status: 404n,
      requestBytes: 0n,
      responseBytes: 9n,
      attributes: {
        "http.request.method": sv("GET"),
        "http.response.status_code": iv(404n),
        "kafka.topics": create(AttributeValueSchema, { value: { case: "stringList", value: create(StringListSchema, { values: ["a", "b"] }) } }),
        big: iv(1n << 60n),
        ok: create(AttributeValueSchema, { value: { case: "boolValue", value: true } }),
      },
      client: create(EndpointSchema, { address: "10.0.0.1", port: 51400 }),
      server: create(EndpointSchema, { address: "::1", port: 8080 }),
    });
    const line = recordToJsonLine(toBinary(RecordSchema, r));
    assert.equal(
      line,
      '{"protocol":"http2","client":"10.0.0.1:51400","server":"[::1]:8080","startNs":"1700000000123456789","durationNs":"42","operation":"GET","resource":"/hello","status":404,"error":false,"reqBytes":0,"respBytes":9,' +
        '"attributes":{"big":"1152921504606846976","http.request.method":"GET","http.response.status_code":404,"kafka.topics":["a","b"],"ok":true}}',
    );
  });

  test("incomplete: status null, incomplete true; trace as hex", () => {
    const r = create(RecordSchema, {
      protocol: "redis",
      incomplete: true,
      trace: create(TraceContextSchema, { traceId: new Uint8Array(16).fill(0xab), parentSpanId: new Uint8Array(8).fill(1), flags: 1, format: "w3c" }),
    });
    const j = recordToJson(r);
    assert.equal(j.status, null);
    assert.equal(j.incomplete, true);
    assert.equal(j.client, "");
    assert.deepEqual(j.trace, { traceId: "ab".repeat(16), parentSpanId: "01".repeat(8), flags: 1, format: "w3c" });
    const k = recordToJson(create(RecordSchema, { protocol: "x", status: 0n }));
    assert.equal(k.status, 0);
    assert.equal("incomplete" in k, false);
  });
});

describe("recordToJson on wire bytes (hand-written reader)", () => {
  // deterministic pseudo-random records
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const words = ["GET", "/api/v1/x?y=1", "", "café", "\u{1F600}", "a".repeat(200), "SELECT ? FROM t", "k\u0000v", 'say "hi"', "back\\slash", "line\nbreak\t\u001f", "\u2028\u007f"];
  const word = () => words[rnd(words.length)]!;
  const big = () => [0n, 1n, 127n, 128n, 1n << 40n, (1n << 63n) - 1n, 1n << 62n][rnd(7)]!;
  function randomRecord() {
    const attributes: Record<string, ReturnType<typeof sv>> = {};
    const n = rnd(6);
    for (let i = 0; i < n; i++) {
      // keys an object orders first (array indices) or drops (__proto__) now and then
      const k = rnd(20) === 0 ? ["0", "7", "__proto__", "01", "4294967296"][rnd(5)]! : rnd(10) === 0 ? word() : `attr.${rnd(10)}`;
      const c = rnd(6);
      attributes[k] =
        c === 0
          ? sv(word())
          : c === 1
            ? iv(rnd(2) ? -big() : big())
            : c === 2
              ? create(AttributeValueSchema, { value: { case: "boolValue", value: rnd(2) === 1 } })
              : c === 3
                ? create(AttributeValueSchema, { value: { case: "doubleValue", value: [0.5, -1e300, NaN, Infinity][rnd(4)]! } })
                : c === 4
                  ? create(AttributeValueSchema, { value: { case: "stringList", value: create(StringListSchema, { values: [word(), word()].slice(rnd(3)) }) } })
                  : create(AttributeValueSchema, {});
    }
    return create(RecordSchema, {
      protocol: word(),
      startNs: big(),
      durationNs: big(),
      operation: word(),
      resource: word(),
      status: rnd(3) === 0 ? undefined : rnd(2) ? -big() : big(),
      error: rnd(2) === 1,
      requestBytes: BigInt(rnd(100000)),
      responseBytes: BigInt(rnd(100000)),
      incomplete: rnd(4) === 0,
      trace: rnd(3) === 0 ? create(TraceContextSchema, { traceId: new Uint8Array(16).fill(rnd(256)), parentSpanId: new Uint8Array(8).fill(7), flags: rnd(2), format: "w3c" }) : undefined,
      attributes,
    });
  }

  test("equals the protobuf-es path on 2,000 random records, alone and with appended endpoints", () => {
    for (let i = 0; i < 2000; i++) {
      const r = randomRecord();
      const bytes = toBinary(RecordSchema, r);
      assert.deepEqual(recordToJson(bytes), recordToJson(fromBinary(RecordSchema, bytes)), `record ${i}`);
      // the parser appends endpoint fields as a second encoding of the same message
      const suffix = toBinary(RecordSchema, create(RecordSchema, { client: create(EndpointSchema, { address: "10.0.0.1", port: 51400 }), server: create(EndpointSchema, { address: "fe80::1", port: 8080 }) }));
      const both = new Uint8Array(bytes.length + suffix.length);
      both.set(bytes);
      both.set(suffix, bytes.length);
      const a = recordToJson(both);
      assert.deepEqual(a, recordToJson(fromBinary(RecordSchema, both)));
      assert.equal(a.client, "10.0.0.1:51400");
      assert.equal(a.server, "[fe80::1]:8080");
      assert.equal(JSON.stringify(a), JSON.stringify(recordToJson(fromBinary(RecordSchema, both))), "same key order");
    }
  });

  test("recordToJsonLine writes wire bytes into the line exactly as JSON.stringify writes the object, on 3,000 random records", () => {
    const ends = { client: 'odd"client:1', server: "10.0.0.2:80" };
    let odd = 0;
    for (let i = 0; i < 3000; i++) {
      const bytes = toBinary(RecordSchema, randomRecord());
      // an attribute given twice on the wire (the last wins) and appended endpoints
      const again = toBinary(RecordSchema, create(RecordSchema, { attributes: { "attr.3": sv(word()) }, client: create(EndpointSchema, { address: "::1", port: rnd(3) }) }));
      const both = new Uint8Array(bytes.length + again.length);
      both.set(bytes);
      both.set(again, bytes.length);
      for (const b of [bytes, both]) {
        assert.equal(recordToJsonLine(b), JSON.stringify(recordToJson(b)), `record ${i}`);
        assert.equal(recordToJsonLine(b, ends), JSON.stringify(recordToJson(b, ends)), `record ${i} with ends`);
        JSON.parse(recordToJsonLine(b));
      }
      if (/"(0|7|__proto__)"/.test(JSON.stringify(Object.keys(recordToJson(bytes).attributes)))) odd++;
    }
    assert.ok(odd > 10, `keys an object reorders were tried (${odd})`);
  });

  test("recordToJsonLine: strings that are not valid UTF-8 read as the object path reads them", () => {
    // protocol = "a" 0xff "b", resource = a cut 3-byte sequence, operation = an overlong "/"
    const bytes = Uint8Array.of(0x0a, 3, 0x61, 0xff, 0x62, 0x2a, 2, 0xe2, 0x82, 0x22, 2, 0xc0, 0xaf);
    const tags = recordToJson(bytes);
    assert.ok(tags.protocol.includes("\ufffd"));
    assert.equal(recordToJsonLine(bytes), JSON.stringify(tags));
    assert.throws(() => recordToJsonLine(Uint8Array.of(0x0a, 0x05, 0x41)), RecordWireError);
  });

  test("bytes that are not a record throw RecordWireError; endpoints can be given", () => {
    assert.throws(() => recordToJson(Uint8Array.of(0x0a, 0x05, 0x41)), RecordWireError);
    assert.throws(() => recordToJson(Uint8Array.of(0x10, 0xff, 0xff)), RecordWireError);
    const bytes = toBinary(RecordSchema, create(RecordSchema, { protocol: "redis" }));
    assert.equal(recordToJson(bytes, { client: "a:1", server: "b:2" }).server, "b:2");
  });
});

describe("RECORD_JSON_FIELDS", () => {
  // Every field of proto/ is set (test-support/wire.ts); the table says which ones the NDJSON form
  // takes. Clearing a field it takes must change the line, clearing one it leaves out must not,
  // and the wire reader must agree with the protobuf-es path each time.
  const paths: [string, string, boolean][] = [];
  const place = (prefix: string, table: Record<string, string>) => {
    const taken = new Set(coveredFields(table));
    for (const f of Object.keys(table)) paths.push([`${prefix}${f}`, table[f]!, taken.has(f)]);
  };
  place("", RECORD_JSON_FIELDS.Record);
  place("client.", RECORD_JSON_FIELDS.Endpoint);
  place("server.", RECORD_JSON_FIELDS.Endpoint);
  place("trace.", RECORD_JSON_FIELDS.TraceContext);
  const cases = AttributeValueSchema.oneofs[0]!.fields;

  for (const c of cases) {
    test(`every field, an attribute of case ${c.localName}`, () => {
      const full = everyField(RecordSchema, { oneof: (_, members) => members.find((m) => m.localName === c.localName)! });
      const wire = recordToJson(toBinary(RecordSchema, full));
      assert.deepEqual(wire, recordToJson(full));
      const values = Object.values(wire.attributes);
      assert.equal(values.length, 1);
      assert.notEqual(values[0], null, `${c.localName} is read`);
      if (c.localName === "stringList") assert.deepEqual(values[0], ["f1-é", "f2-é"], "StringList.values read");
      for (const [path, use, taken] of paths) {
        const cut = withoutField(RecordSchema, full, path);
        const j = recordToJson(toBinary(RecordSchema, cut));
        assert.deepEqual(j, recordToJson(cut), `${path}: the wire reader and the protobuf-es path agree`);
        if (taken) assert.notDeepEqual(j, wire, `${path} is ${use}: clearing it changes the line`);
        else assert.deepEqual(j, wire, `${path} is ${use}`);
      }
    });
  }

  test("names every oneof case of AttributeValue and the field of StringList", () => {
    assert.deepEqual(coveredFields(RECORD_JSON_FIELDS.AttributeValue).sort(), cases.map((f) => f.localName).sort());
    assert.deepEqual(coveredFields(RECORD_JSON_FIELDS.StringList), StringListSchema.fields.map((f) => f.localName));
  });
});
