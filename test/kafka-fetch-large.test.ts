// A Fetch response of several MiB over several topics, from the Kafka test broker: the decoder
// buffers only the first 256 KiB of a message, and reads the topics and error codes past it as
// the bytes stream by (parsers-wasm/kafka/api/records.ts). A client written from the schemas
// (protocol-support/kafka-client.ts) fetches four topics in one Fetch v11 (the newest tshark 4.0
// dissects): three holding 2 MiB each, then one the broker does not have, whose partition error
// (UNKNOWN_TOPIC_OR_PARTITION, 3) comes after 6 MiB of records. Captured with tcpdump, decoded
// by the plugin and by tshark: topics, first error code and record count agree.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startKafkaTestBroker } from "@wirescope/cli/demo/kafka-broker/index";
import { captureDecoded } from "./protocol-support/index.js";
import { kafkaPdus } from "./protocol-support/kafka-tshark.js";
import { Client, recordBatch } from "./protocol-support/kafka-client.js";

const MiB = 1 << 20;
const TOPICS = ["big-a", "big-b", "big-c"];
const MISSING = "no-such-topic";

test("kafka: a 6 MiB Fetch response over four topics: its topics, the error code past 256 KiB and its record count, as tshark decodes them", { timeout: 120_000 }, async () => {
  const broker = await startKafkaTestBroker({ defaultPartitions: 1, autoCreateTopics: false, maxFetchWaitMs: 100 });
  after(() => broker.stop());
  const producer = await Client.connect(broker.port);
  for (const t of TOPICS) {
    broker.createTopic(t, 1);
    // two batches of one 1 MiB record each per topic
    for (let i = 0; i < 2; i++) {
      const r = await producer.call(0, 7, false, (w) => w.nullableString(null).int16(1).int32(5000).array([t], (w, t) => w.string(t).array([0], (w, p) => w.int32(p).nullableBytes(recordBatch(`${t}-${i}-`.padEnd(MiB, "x"))))));
      r.array((r) => (r.string(), r.array((r) => assert.equal((r.int32(), r.int16()), 0, `produce to ${t}`))));
    }
  }
  await producer.close();

  const seen = { errors: [] as number[], bytes: 0 };
  const { pcap, records } = await captureDecoded(broker.port, "kafka-fetch-large", { plugins: ["kafka"] }, async () => {
    const c = await Client.connect(broker.port);
    // Fetch v11: replica_id max_wait_ms min_bytes max_bytes isolation_level session_id session_epoch
    // topics[ name partitions[ partition current_leader_epoch fetch_offset log_start_offset partition_max_bytes ] ]
    // forgotten_topics_data[] rack_id
    const r = await c.call(1, 11, false, (w) => w.int32(-1).int32(100).int32(1).int32(64 * MiB).int8(0).int32(0).int32(-1)
      .array([...TOPICS, MISSING], (w, t) => w.string(t).array([0], (w, p) => w.int32(p).int32(-1).int64(0n).int64(-1n).int32(8 * MiB)))
      .array([], () => {}).string(""));
    r.int32(); // throttle_time_ms
    seen.errors.push(r.int16());
    r.int32(); // session_id
    r.array((r) => {
      r.string();
      r.array((r) => {
        r.int32();
        seen.errors.push(r.int16());
        r.int64(), r.int64(), r.int64();
        r.array((r) => (r.int64(), r.int64()));
        r.int32();
        seen.bytes += r.nullableBytes()?.length ?? 0;
      });
    });
    await c.close();
  });
  assert.deepEqual(seen.errors, [0, 0, 0, 0, 3], "the client's view: the missing topic's error last");
  assert.ok(seen.bytes > 6 * MiB, `records fetched: ${seen.bytes} bytes`);

  const fetch = records.filter((r) => r.operation === "Fetch");
  assert.equal(fetch.length, 1, JSON.stringify(records.map((r) => [r.operation, r.resource, r.status])));
  const mine = fetch[0]!;
  assert.ok(Number(mine.respBytes) > 6 * MiB, `response bytes ${mine.respBytes}`);
  assert.deepEqual([mine.resource, mine.status, mine.error], [[...TOPICS, MISSING].join(","), 3, true], JSON.stringify(mine));
  assert.equal(mine.attributes["messaging.batch.message_count"], 6);

  // tshark's dissection of the same response (reassembled across its TCP segments)
  const pdus = await kafkaPdus(pcap, broker.port);
  const resp = pdus.find((p) => !p.toBroker && p.corr === mine.attributes["kafka.correlation_id"] && p.clientPort === Number(mine.client.split(":").pop()));
  assert.ok(resp, `tshark saw the response: ${JSON.stringify(pdus.map((p) => [p.toBroker, p.corr, p.key]))}`);
  assert.deepEqual(resp.topics, [...TOPICS, MISSING], "tshark: the response's topics");
  assert.equal(resp.errors.find((e) => e !== 0), mine.status, `tshark: the first error code (${JSON.stringify(resp.errors)})`);
  assert.equal(resp.batches.filter((b) => !b.control).reduce((n, b) => n + b.size, 0), mine.attributes["messaging.batch.message_count"], "tshark: the record count");
});
