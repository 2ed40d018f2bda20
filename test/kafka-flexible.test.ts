// Kafka in the current flexible versions end to end: a minimal client written here from the
// message schemas (apache/kafka clients/src/main/resources/common/message/*.json; kafkajs speaks
// none of these versions) talks to the test broker: ApiVersions v3, Metadata v12 (topic ids),
// Produce v9-v11, Fetch v12 by name and v13/v17 by topic id on a second connection. Captured with
// tcpdump, decoded by our plugin, compared with tshark 4.0 where it knows the version.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startKafkaTestBroker, type KafkaTestBroker } from "@wirescope/cli/demo/kafka-broker/index";
import { Client, recordBatch } from "./protocol-support/kafka-client.js";
import { captureDecoded, tsharkFields, type DecodedRecord } from "./protocol-support/index.js";

const TOPIC = "events";
const UNKNOWN_ID = Buffer.from("5e5e5e5e0000400080001234567890ab", "hex");
let broker: KafkaTestBroker;
let pcap = "";
let records: DecodedRecord[] = [];
const seen = { advertised: new Map<number, number>(), topicId: "", produced: [] as number[], fetched: new Map<string, { error: number; bytes: number }>() };

before(async () => {
  broker = await startKafkaTestBroker({ defaultPartitions: 1, autoCreateTopics: true, maxFetchWaitMs: 100 });
  ({ pcap, records } = await captureDecoded(broker.port, "kafka-flexible", { plugins: ["kafka"] }, workload));
}, { timeout: 60_000 });

after(async () => {
  await broker?.stop();
});

async function workload(): Promise<void> {
  const a = await Client.connect(broker.port);
  const av = await a.call(18, 3, true, (w) => w.nullableString("wirescope-flex").nullableString("1.0").tags());
  assert.equal(av.int16(), 0);
  av.array((r) => {
    const key = r.int16();
    r.int16();
    seen.advertised.set(key, r.int16());
    r.tags();
  });
  const md = await a.call(3, 12, true, (w) => w.array([TOPIC], (w, t) => w.uuid(Buffer.alloc(16)).nullableString(t).tags()).bool(true).bool(false).tags());
  md.int32(); // throttle
  md.array((r) => (r.int32(), r.string(), r.int32(), r.nullableString(), r.tags()));
  md.nullableString(); // cluster id
  md.int32(); // controller
  const listed = md.array((r) => {
    assert.equal(r.int16(), 0);
    assert.equal(r.nullableString(), TOPIC);
    seen.topicId = r.uuid().toString("hex");
  });
  assert.equal(listed?.length, 1, "the topic asked for, auto-created");
  for (const v of [9, 10, 11]) {
    const pr = await a.call(0, v, true, (w) => w.nullableString(null).int16(-1).int32(5000).array([TOPIC], (w, t) => w.string(t).array([0], (w, p) => w.int32(p).nullableBytes(recordBatch(`value-v${v}`)).tags()).tags()).tags());
    pr.array((r) => (r.string(), r.array((r) => seen.produced.push(r.int32(), r.int16()))));
  }
  await a.close();

  // the fetching connection never sees a Metadata response: its topic ids are named from A's
  const b = await Client.connect(broker.port);
  const id = Buffer.from(seen.topicId, "hex");
  const fetch = async (v: number, topics: (Buffer | string)[]) => {
    const fr = await b.call(1, v, true, (w) => {
      if (v <= 14) w.int32(-1); // replica_id
      w.int32(50).int32(1).int32(1 << 20).int8(0).int32(0).int32(-1);
      w.array(topics, (w, t) => {
        if (typeof t === "string") w.string(t);
        else w.uuid(t);
        w.array([0], (w, p) => w.int32(p).int32(-1).int64(0n).int32(-1).int64(-1n).int32(1 << 20).tags()).tags();
      });
      w.array([], () => {}).string("").tags();
    });
    fr.int32();
    fr.int16();
    fr.int32();
    fr.array((r) => {
      const t = v >= 13 ? r.uuid().toString("hex") : r.string();
      r.array((r) => {
        r.int32();
        const error = r.int16();
        r.int64(), r.int64(), r.int64();
        r.array((r) => (r.int64(), r.int64(), r.tags()));
        r.int32();
        seen.fetched.set(`${v}/${t}`, { error, bytes: r.nullableBytes()?.length ?? -1 });
        r.tags();
      });
      r.tags();
    });
  };
  await fetch(12, [TOPIC]);
  await fetch(13, [id]);
  await fetch(17, [id, UNKNOWN_ID]);
  await b.close();
}

test("kafka flexible: the test broker advertises and serves the current versions", () => {
  assert.equal(seen.advertised.get(0), 11);
  assert.equal(seen.advertised.get(1), 17);
  assert.equal(seen.advertised.get(3), 12);
  assert.equal(seen.advertised.get(18), 3);
  assert.equal(seen.topicId, broker.topicId(TOPIC));
  assert.deepEqual(seen.produced, [0, 0, 0, 0, 0, 0]);
  for (const k of [`12/${TOPIC}`, `13/${seen.topicId}`, `17/${seen.topicId}`]) {
    assert.equal(seen.fetched.get(k)?.error, 0, k);
    assert.ok((seen.fetched.get(k)?.bytes ?? 0) > 3 * 61, `${k}: the three batches come back`);
  }
  assert.equal(seen.fetched.get(`17/${UNKNOWN_ID.toString("hex")}`)?.error, 100, "UNKNOWN_TOPIC_ID");
});

test("kafka flexible: Fetch v13+ topics are named from the Metadata of another connection; an unknown id stays an id", () => {
  const by = (key: number, v: number) => records.filter((r) => r.attributes["kafka.api_key"] === key && r.attributes["kafka.api_version"] === v);
  assert.equal(records.length, 8, JSON.stringify(records.map((r) => [r.operation, r.attributes["kafka.api_version"]])));
  assert.equal(by(3, 12)[0]?.resource, TOPIC);
  for (const v of [9, 10, 11]) {
    const [r] = by(0, v);
    assert.equal(r?.resource, TOPIC, `Produce v${v}`);
    assert.equal(r?.status, 0);
  }
  assert.equal(by(1, 12)[0]?.resource, TOPIC);
  const v13 = by(1, 13)[0]!;
  assert.equal(v13.resource, TOPIC);
  assert.equal(v13.attributes["kafka.topic_ids"], undefined);
  assert.equal(v13.status, 0);
  const v17 = by(1, 17)[0]!;
  assert.equal(v17.resource, TOPIC);
  assert.deepEqual(v17.attributes["kafka.topic_ids"], [UNKNOWN_ID.toString("hex")]);
  assert.equal(v17.status, 100);
  assert.ok(records.every((r) => r.incomplete === undefined && r.attributes["kafka.body_decoded"] === undefined));
  assert.notEqual(v13.client, by(3, 12)[0]!.client, "fetched on another connection than the Metadata");
});

test("kafka flexible: our records match tshark 4.0 per correlation id where it knows the version", async () => {
  const rows = await tsharkFields(pcap, `tcp.port==${broker.port},kafka`, `kafka && tcp.dstport==${broker.port}`, ["tcp.srcport", "kafka.api_key", "kafka.api_version", "kafka.correlation_id", "kafka.client_id", "kafka.topic_name", "_ws.expert.message"]);
  assert.equal(rows.length, 8, "tshark saw every request");
  const unknown: string[] = [];
  for (const [port, key, version, corr, clientId, topics, expert] of rows) {
    const mine = records.filter((r) => Number(r.client.split(":").pop()) === Number(port) && r.attributes["kafka.correlation_id"] === Number(corr));
    const where = `api ${key} v${version} (${expert})`;
    assert.equal(mine.length, 1, where);
    const r = mine[0]!;
    // the request header: tshark reads it in every version
    assert.equal(r.attributes["kafka.api_key"], Number(key), where);
    assert.equal(r.attributes["kafka.api_version"], Number(version), where);
    assert.equal(r.attributes["messaging.client.id"], clientId, where);
    // the body: tshark 4.0 knows Metadata up to v9, Produce up to v8 and Fetch up to v11, so of
    // this traffic only ApiVersions v3 (which names no topic); the rest is compared with what
    // the client sent and the broker answered (the tests above)
    if (/Unsupported/.test(expert)) unknown.push(`${key}v${version}`);
    else assert.equal(topics, "", where);
  }
  assert.deepEqual(unknown, ["3v12", "0v9", "0v10", "0v11", "1v12", "1v13", "1v17"], "the versions tshark 4.0 does not dissect");
});
