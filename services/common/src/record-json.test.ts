import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { RecordSchema, AttributeValueSchema, EndpointSchema, TraceContextSchema, StringListSchema } from "./gen/wirescope/v1/record_pb.js";
import { recordToJson, recordToJsonLine } from "./record-json.js";

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
