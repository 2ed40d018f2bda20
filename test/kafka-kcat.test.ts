// Kafka end to end with librdkafka: kcat (Debian's 1.7.1, librdkafka 2.0.2) produces with every
// codec (none, gzip, snappy, lz4, zstd; idempotent, so InitProducerId v4 in the flexible
// encoding), with acks=0, asks Metadata for a topic that does not exist, consumes with -C
// (ListOffsets, Fetch v11) and with a consumer group -G (FindCoordinator, JoinGroup, SyncGroup,
// OffsetFetch v7 flexible, OffsetCommit v7, LeaveGroup), against the test broker in
// services/cli/src/demo/kafka-broker/. The traffic is captured with tcpdump; tshark's Kafka
// dissector (-T json, which decompresses every codec) is the oracle, compared per request with
// our plugin's records: api key and version, client id, topics, first error code, and for Produce
// requests and Fetch responses the record count and codecs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startKafkaTestBroker, type KafkaTestBroker } from "@wirescope/cli/demo/kafka-broker/index";
import { captureDecoded, runKcat, type DecodedRecord } from "./protocol-support/index.js";
import { kafkaPdus } from "./protocol-support/kafka-tshark.js";

const TOPIC = "orders";
const CODECS = ["none", "gzip", "snappy", "lz4", "zstd"] as const;
const PER_CODEC = 9;
const FIRE_AND_FORGET = 3;
const TOTAL = CODECS.length * PER_CODEC + FIRE_AND_FORGET;
/** generous: kcat normally takes well under a second per run, a busy 2-core machine may not */
const RUN_TIMEOUT_MS = 30_000;

let broker: KafkaTestBroker;
let pcap = "";
let records: DecodedRecord[] = [];
const consumed = { simple: 0, group: 0 };
let missingTopicOutput = "";

/** Runs kcat against the broker with `input` on stdin; resolves with its stdout. */
async function kcat(args: string[], input = ""): Promise<string> {
  return (await runKcat(`127.0.0.1:${broker.port}`, args, input, RUN_TIMEOUT_MS)).out;
}

/** Compressible values (librdkafka sends a batch uncompressed when compressing does not make it smaller), keyed k0..k8 so both partitions get some. */
function messages(codec: string, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += `k${i}:${codec}-${i}-${"0".repeat(200)}\n`;
  return s;
}

before(async () => {
  broker = await startKafkaTestBroker({ defaultPartitions: 2, autoCreateTopics: false, maxFetchWaitMs: 200 });
  broker.createTopic(TOPIC, 2);
  ({ pcap, records } = await captureDecoded(broker.port, "kafka-kcat", { plugins: ["kafka"] }, async () => {
    for (const z of CODECS) {
      await kcat(["-P", "-t", TOPIC, "-K", ":", "-z", z, "-X", "enable.idempotence=true", "-X", `client.id=kcat-${z}`], messages(z, PER_CODEC));
    }
    await kcat(["-P", "-t", TOPIC, "-K", ":", "-X", "acks=0", "-X", "client.id=kcat-acks0"], messages("acks0", FIRE_AND_FORGET));
    missingTopicOutput = await kcat(["-L", "-t", "no-such-topic", "-X", "client.id=kcat-list"]);
    const simple = await kcat(["-C", "-t", TOPIC, "-o", "beginning", "-e", "-f", "%s\n", "-X", "client.id=kcat-simple"]);
    consumed.simple = simple.split("\n").filter(Boolean).length;
    const group = await kcat(["-G", "billing", "-X", "auto.offset.reset=earliest", "-e", "-f", "%s\n", "-X", "client.id=kcat-group", TOPIC]);
    consumed.group = group.split("\n").filter(Boolean).length;
  }));
}, { timeout: 180_000 });

after(async () => {
  await broker?.stop();
});

const attr = (r: DecodedRecord, k: string) => r.attributes[k];
const CODEC_NAMES = ["none", "gzip", "snappy", "lz4", "zstd"];

test("kafka-kcat: librdkafka produced with every codec and consumed it all back, alone and in a group", () => {
  assert.equal(consumed.simple, TOTAL, "kcat -C read every message");
  assert.equal(consumed.group, TOTAL, "kcat -G read every message");
  assert.match(missingTopicOutput, /no-such-topic.*Broker: Unknown topic or partition/s);
  for (const key of [18, 3, 22, 0, 2, 1, 10, 11, 14, 9, 8, 13]) assert.ok((broker.served.get(key) ?? 0) > 0, `api key ${key} was used`);
  // the versions librdkafka 2.0.2 negotiates with a broker that offers more (docs/protocols.md)
  const versions = new Map<number, Set<number>>();
  for (const r of records) {
    const k = attr(r, "kafka.api_key") as number;
    versions.set(k, (versions.get(k) ?? new Set()).add(attr(r, "kafka.api_version") as number));
  }
  const want: [number, number][] = [[0, 7], [1, 11], [2, 2], [3, 4], [8, 7], [9, 7], [10, 2], [11, 5], [13, 1], [14, 3], [18, 3], [22, 4]];
  for (const [k, v] of want) assert.deepEqual([...(versions.get(k) ?? [])], [v], `api key ${k} versions`);
});

test("kafka-kcat: our records match tshark per request, record counts and codecs included", async () => {
  const pdus = await kafkaPdus(pcap, broker.port);
  // tshark 4.0 knows InitProducerId up to v3, and Produce, Fetch and Metadata below what the
  // broker advertises: it notes "Unsupported <API> version. Supports v0-N." (a warning about its
  // own tables). It also mis-dissects the consumer-protocol bytes that JoinGroup and SyncGroup
  // carry (written by librdkafka, passed through unchanged by the broker), as with kafkajs in
  // kafka.test.ts. Nothing else may be flagged.
  for (const p of pdus) {
    for (const m of p.expert) {
      const known = /^Unsupported [A-Za-z]+ version\. Supports v0-\d+\.$/.test(m) || ((p.key === 11 || p.key === 14) && m === "Dissected message does not end at the pdu length offset");
      assert.ok(known, `frame ${p.frame} (api key ${p.key}): ${m}`);
    }
  }
  const reqs = pdus.filter((p) => p.toBroker);
  const resps = new Map(pdus.filter((p) => !p.toBroker).map((p) => [`${p.clientPort}/${p.corr}`, p]));
  assert.ok(reqs.length >= 40, `tshark requests: ${reqs.length}`);
  assert.equal(records.length, reqs.length, "one record per request");
  const clientPort = (r: DecodedRecord) => Number(r.client.split(":").pop());
  let counted = 0;
  for (const q of reqs) {
    const where = `frame ${q.frame}: ${q.clientPort}/${q.corr} api ${q.key} v${q.version}`;
    const mine = records.filter((r) => clientPort(r) === q.clientPort && attr(r, "kafka.correlation_id") === q.corr);
    assert.equal(mine.length, 1, `${where}: one record`);
    const r = mine[0];
    assert.equal(attr(r, "kafka.api_key"), q.key, where);
    assert.equal(attr(r, "kafka.api_version"), q.version, where);
    assert.equal(attr(r, "messaging.client.id"), q.clientId, where);
    const resp = resps.get(`${q.clientPort}/${q.corr}`);
    const topics = q.topics.length ? q.topics : (resp?.topics ?? []);
    assert.deepEqual([...((attr(r, "kafka.topics") as string[] | undefined) ?? [])].sort(), [...topics].sort(), `${where}: topics`);
    if (!resp) {
      // acks=0 Produce needs no answer; kcat -e exits with requests in flight (a long-poll Fetch,
      // a Metadata refresh): the connection closed before their answers, written incomplete
      const acks0 = attr(r, "kafka.no_response") === true;
      assert.ok(acks0 ? q.key === 0 && r.incomplete === undefined : r.incomplete === true, `${where}: unanswered`);
    } else {
      const first = resp.errors.find((e) => e !== 0) ?? 0;
      assert.equal(r.status, first, `${where}: status`);
      assert.equal(r.error, first !== 0, where);
    }
    // Produce carries its records in the request, Fetch in the response
    const carrier = q.key === 0 ? q : q.key === 1 ? resp : undefined;
    if (!carrier) {
      assert.equal(attr(r, "messaging.batch.message_count"), undefined, where);
      continue;
    }
    const bs = carrier.batches;
    for (const b of bs) if (b.dissected !== undefined) assert.equal(b.dissected, b.size, `${where}: tshark decompressed as many records as the batch header says (codec ${b.codec})`);
    assert.equal(attr(r, "messaging.batch.message_count"), bs.filter((b) => !b.control).reduce((n, b) => n + b.size, 0), `${where}: record count`);
    assert.equal(attr(r, "kafka.records_counted"), undefined, where);
    const codecs = [...new Set(bs.map((b) => b.codec))].sort().map((c) => CODEC_NAMES[c]);
    assert.equal(attr(r, "kafka.compression"), codecs.length ? codecs.join(",") : undefined, `${where}: codecs`);
    if (bs.length > 0) counted++;
  }
  assert.ok(counted >= CODECS.length * 2, `requests with record batches compared: ${counted}`);
  // the deliberate error: Metadata for a topic that does not exist
  assert.ok(records.some((r) => r.operation === "Metadata" && r.status === 3 && r.resource === "no-such-topic"));
});

test("kafka-kcat: every codec is counted, zstd included, without decompressing", () => {
  const produce = records.filter((r) => r.operation === "Produce");
  for (const z of CODECS) {
    const mine = produce.filter((r) => r.attributes["messaging.client.id"] === `kcat-${z}`);
    assert.ok(mine.length > 0, `${z}: produce requests`);
    // librdkafka compresses every batch of these values with the codec asked for
    for (const r of mine) assert.equal(attr(r, "kafka.compression"), z, `${z}: codec of corr ${attr(r, "kafka.correlation_id")}`);
    assert.equal(mine.reduce((n, r) => n + (attr(r, "messaging.batch.message_count") as number), 0), PER_CODEC, `${z}: records produced`);
  }
  // the simple consumer fetched each message once
  const fetched = records.filter((r) => r.operation === "Fetch" && attr(r, "messaging.client.id") === "kcat-simple");
  assert.equal(fetched.reduce((n, r) => n + ((attr(r, "messaging.batch.message_count") as number | undefined) ?? 0), 0), TOTAL);
  const codecs = new Set(fetched.flatMap((r) => ((attr(r, "kafka.compression") as string | undefined) ?? "").split(",").filter(Boolean)));
  assert.deepEqual([...codecs].sort(), [...CODECS].sort(), "every codec came back in Fetch responses");
});
