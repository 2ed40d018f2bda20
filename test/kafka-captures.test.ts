// Every Kafka capture in ../shared/captures decodes to what its truth file (tshark 4.0) says:
// per correlation id the API name, key and version, the client id, the topics (where tshark
// decoded the body) and the first non-zero error code (where tshark decoded the response).
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeCapture } from "./protocol-support/index.js";
import { truths, serverPort, truthStream } from "./protocol-support/truth.js";

const all = truths("kafka");

test("kafka captures: the shared captures are there", () => {
  assert.ok(all.length >= 3, `expected the Kafka captures in ../shared/captures/kafka, found ${all.length}`);
});

for (const { file, truth } of all) {
  test(`kafka capture ${truth.capture} matches its truth file`, () => {
    const { records, counters } = decodeCapture(file, { plugins: ["kafka"], serverPort: serverPort(truth, 9092) });
    assert.equal(Object.keys(counters).filter((k) => k.startsWith("plugin_traps")).length, 0, `plugin trapped: ${JSON.stringify(counters)}`);
    assert.equal(records.length, truth.transactions.length, `records: ${JSON.stringify(records)}`);
    for (const w of truth.transactions) {
      const r = records.find((x) => truthStream(truth, x) === w.tcp_stream && x.attributes["kafka.correlation_id"] === w.correlation_id);
      assert.ok(r, `no record for correlation id ${w.correlation_id} on stream ${w.tcp_stream}`);
      const a = r.attributes;
      assert.equal(r.protocol, "kafka");
      assert.equal(r.operation, w.api_name);
      assert.equal(a["kafka.api_key"], w.api_key);
      assert.equal(a["kafka.api_version"], w.api_version);
      assert.equal(a["messaging.client.id"], w.client_id);
      assert.equal(a["messaging.system"], "kafka");
      assert.equal(r.incomplete, undefined, "the response is in the capture");
      const topics = w.topics as string[];
      if (w.tshark_request_body_decoded !== false && topics.length > 0) {
        assert.deepEqual(a["kafka.topics"], topics);
        assert.equal(r.resource, topics.join(","));
      }
      const codes = w.error_codes as number[];
      if (w.tshark_response_body_decoded !== false && codes.length > 0) {
        const first = codes.find((c) => c !== 0) ?? 0;
        assert.equal(r.status, first);
        assert.equal(a["kafka.error_code"], first);
        assert.equal(r.error, first !== 0);
      }
    }
  });
}

test("kafka capture: Fetch v12 (flexible, beyond tshark 4.0) still yields its topic and error code", () => {
  const t = all.find((x) => x.truth.capture.includes("fetch-v12"));
  assert.ok(t, "fetch v12 capture present");
  const { records } = decodeCapture(t.file, { plugins: ["kafka"], serverPort: serverPort(t.truth, 9092) });
  assert.equal(records.length, 1);
  // tshark 4.0 stops at "Unsupported Fetch version"; the request names the topic it fetches
  assert.equal(records[0].resource, "zqy-test");
  assert.equal(records[0].status, 0);
});
