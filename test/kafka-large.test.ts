// Kafka messages far larger than what the decoder buffers (its first 256 KiB): kcat (librdkafka)
// produces multi-MiB Produce requests (uncompressed and lz4) and fetches them back in multi-MiB
// Fetch responses from the test broker in services/cli/src/demo/kafka-broker/. The traffic is
// captured with tcpdump, decoded by our plugin (`wirescope capture` replay) and by tshark, whose
// Kafka dissector is the oracle: every record batch of every request is counted, past the
// buffered prefix too, and each request's count equals tshark's.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startKafkaTestBroker, type KafkaTestBroker } from "@wirescope/cli/demo/kafka-broker/index";
import { captureDecoded, runKcat, type DecodedRecord } from "./protocol-support/index.js";
import { kafkaPdus } from "./protocol-support/kafka-tshark.js";

const TOPIC = "bulk";
const MiB = 1 << 20;
/** per producer: 1,500 messages of ~2 KiB, 3 MiB */
const N = 1500;
const RUN_TIMEOUT_MS = 60_000;
const BIG = ["-X", "batch.size=8000000", "-X", "message.max.bytes=16000000", "-X", "linger.ms=2000"];

let broker: KafkaTestBroker;
let pcap = "";
let records: DecodedRecord[] = [];
let consumed = 0;

async function kcat(args: string[], input = ""): Promise<string> {
  return (await runKcat(`127.0.0.1:${broker.port}`, args, input, RUN_TIMEOUT_MS)).out;
}

/** Values lz4 shrinks only by half (hex of random bytes): its batches stay large. */
function messages(tag: string): string {
  let s = "";
  for (let i = 0; i < N; i++) s += `k${i % 7}:${tag}-${i}-${randomBytes(1000).toString("hex")}\n`;
  return s;
}

before(async () => {
  broker = await startKafkaTestBroker({ defaultPartitions: 2, autoCreateTopics: false, maxFetchWaitMs: 200 });
  broker.createTopic(TOPIC, 2);
  ({ pcap, records } = await captureDecoded(broker.port, "kafka-large", { plugins: ["kafka"] }, async () => {
    for (const z of ["none", "lz4"]) await kcat(["-P", "-t", TOPIC, "-K", ":", "-z", z, ...BIG, "-X", `client.id=big-${z}`], messages(z));
    const out = await kcat(["-C", "-t", TOPIC, "-o", "beginning", "-e", "-f", "%s\n", "-X", "fetch.message.max.bytes=16000000", "-X", "fetch.max.bytes=32000000", "-X", "receive.message.max.bytes=40000000", "-X", "client.id=big-consumer"]);
    consumed = out.split("\n").filter(Boolean).length;
  }));
}, { timeout: 120_000 });

after(async () => {
  await broker?.stop();
});

const attr = (r: DecodedRecord, k: string) => r.attributes[k];

test("kafka-large: multi-MiB Produce requests and Fetch responses, every record counted as tshark counts them", { timeout: 120_000 }, async () => {
  assert.equal(consumed, 2 * N, "kcat -C read every message back");
  const produce = records.filter((r) => r.operation === "Produce");
  const fetch = records.filter((r) => r.operation === "Fetch");
  assert.ok(produce.some((r) => Number(r.reqBytes) > MiB), `a Produce request above 1 MiB: ${produce.map((r) => r.reqBytes).join(", ")}`);
  assert.ok(fetch.some((r) => Number(r.respBytes) > MiB), `a Fetch response above 1 MiB: ${fetch.map((r) => r.respBytes).join(", ")}`);
  for (const r of [...produce, ...fetch]) assert.equal(attr(r, "kafka.records_counted"), undefined, `corr ${attr(r, "kafka.correlation_id")}: counted`);
  const sum = (rs: DecodedRecord[]) => rs.reduce((n, r) => n + ((attr(r, "messaging.batch.message_count") as number | undefined) ?? 0), 0);
  assert.equal(sum(produce), 2 * N, "records produced");
  assert.equal(sum(fetch), 2 * N, "records fetched");

  // per request against tshark: Produce carries its records in the request, Fetch in the response
  const pdus = await kafkaPdus(pcap, broker.port);
  const resps = new Map(pdus.filter((p) => !p.toBroker).map((p) => [`${p.clientPort}/${p.corr}`, p]));
  const clientPort = (r: DecodedRecord) => Number(r.client.split(":").pop());
  let compared = 0;
  let largest = 0;
  for (const q of pdus.filter((p) => p.toBroker && (p.key === 0 || p.key === 1))) {
    const carrier = q.key === 0 ? q : resps.get(`${q.clientPort}/${q.corr}`);
    const mine = records.filter((r) => clientPort(r) === q.clientPort && attr(r, "kafka.correlation_id") === q.corr);
    const where = `${q.clientPort}/${q.corr} api ${q.key}`;
    assert.equal(mine.length, 1, `${where}: one record`);
    if (!carrier) continue; // a long-poll Fetch cut by kcat's exit
    const theirs = carrier.batches.filter((b) => !b.control).reduce((n, b) => n + b.size, 0);
    assert.equal(attr(mine[0]!, "messaging.batch.message_count"), theirs, `${where}: record count`);
    if (theirs > 0) compared++;
    largest = Math.max(largest, Number(q.key === 0 ? mine[0]!.reqBytes : mine[0]!.respBytes));
  }
  assert.ok(compared >= 3, `requests with records compared: ${compared}`);
  assert.ok(largest > MiB, `largest message compared: ${largest} bytes`);
});
