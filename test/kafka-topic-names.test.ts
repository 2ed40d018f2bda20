// Kafka topic ids named across parser replicas: a client asks Metadata v12 on one connection and
// fetches by topic id (Fetch v13) on another, against the test broker, through a recording relay.
// The two connections are replayed to two real parser processes on one real nats-server, each
// connection on a partition the other replica does not own: the Fetch's topic is named from the
// Metadata the other replica decoded, through the shared KV bucket (wirescope-kafka-topics); a
// replica started afterwards gets the pair from the bucket's snapshot.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { ownerOf } from "@wirescope/runtime";
import { startKafkaTestBroker } from "@wirescope/cli/demo/kafka-broker/index";
import { WireWriter } from "@wirescope/cli/demo/kafka-broker/wire";
import { captureThroughRelay, parserStatus, settleRecords, startFleet, startParser, toRawBatches, useParserBed, type Conversation, type ParserProc } from "./parser-support.js";
import { waitFor } from "./support/servers.js";
import { PLUGINS_DIR } from "./support/index.js";

const P = 64;
const TOPIC = "orders-by-id";
const ARGS = ["--builtin-dir", PLUGINS_DIR];

/** One request, its whole response (flexible header v2, client id "c"). */
async function call(port: number, key: number, version: number, body: (w: WireWriter) => void): Promise<void> {
  const s = net.connect(port, "127.0.0.1");
  await new Promise<void>((r, j) => (s.once("connect", r), s.once("error", j)));
  const h = new WireWriter().int16(key).int16(version).int32(1).nullableString("c").uvarint(0);
  const b = new WireWriter(true);
  body(b);
  const msg = Buffer.concat([h.toBuffer(), b.toBuffer()]);
  const size = Buffer.alloc(4);
  size.writeInt32BE(msg.length);
  let got = Buffer.alloc(0);
  await new Promise<void>((resolve, reject) => {
    s.on("data", (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 4 && got.length >= 4 + got.readInt32BE(0)) resolve();
    });
    s.once("error", reject);
    s.write(Buffer.concat([size, msg]));
  });
  await new Promise<void>((r) => s.end(r));
}

/** The Metadata connection and the Fetch connection, recorded chunk by chunk. */
async function traffic(): Promise<{ metadata: Conversation; fetch: Conversation; topicId: string }> {
  const broker = await startKafkaTestBroker({ defaultPartitions: 1, autoCreateTopics: true, maxFetchWaitMs: 50 });
  try {
    let topicId = "";
    const convs = await captureThroughRelay(broker.port, "kafka-broker", async (port) => {
      await call(port, 3, 12, (w) => w.array([TOPIC], (w, t) => w.uuid(Buffer.alloc(16)).nullableString(t).tags()).bool(true).bool(false).tags());
      topicId = broker.topicId(TOPIC)!;
      assert.ok(topicId, "the broker created the topic");
      await call(port, 1, 13, (w) => {
        w.int32(-1).int32(20).int32(1).int32(1 << 20).int8(0).int32(0).int32(-1);
        w.array([Buffer.from(topicId, "hex")], (w, id) => w.uuid(id).array([0], (w, p) => w.int32(p).int32(-1).int64(0n).int32(-1).int64(-1n).int32(1 << 20).tags()).tags());
        w.array([], () => {}).string("").tags();
      });
    });
    assert.equal(convs.length, 2);
    return { metadata: convs[0]!, fetch: convs[1]!, topicId };
  } finally {
    await broker.stop();
  }
}

/** A connection key, counted up from `from`, whose partition `owner` holds among `members`. */
function keyOwnedBy(owner: string, members: string[], from: bigint): bigint {
  for (let k = from; ; k++) if (ownerOf(Number(k % BigInt(P)), members) === owner) return k;
}

describe("kafka topic ids named across parser replicas", { timeout: 120_000 }, () => {
  const bed = useParserBed();

  it("a Fetch v13 on one replica is named from the Metadata another replica decoded; a replica started later has the pair", async () => {
    const { metadata, fetch, topicId } = await traffic();
    const fleet = await startFleet(bed, 2, ARGS, "topics", P);
    const members = fleet.map((p) => p.instance);
    const [a, b] = fleet as [ParserProc, ParserProc];
    const seqs = new Map<number, number>();
    const send = async (conv: Conversation, key: bigint) => {
      const batch = toRawBatches([conv], { partitions: P, firstKey: key, seqStart: seqs }).batches[0]!;
      bed.nc.publish(`wirescope.raw.${batch.partition}`, batch.bytes);
      await bed.nc.flush();
    };
    await send(metadata, keyOwnedBy(a.instance, members, 100n));
    // a learns the pair from its Metadata record and puts it; b hears it from the bucket
    await waitFor(async () => ((await parserStatus(b)).counters["kafka_topic_ids.shared_in"] ?? 0) >= 1, { timeoutMs: 20_000, what: "b learned the topic id from the bucket" });
    await send(fetch, keyOwnedBy(b.instance, members, 200n));

    const seen = await settleRecords(bed.nc, 1500, 30_000);
    const meta = seen.find((s) => s.record.operation === "Metadata");
    const fetched = seen.find((s) => s.record.operation === "Fetch");
    assert.ok(meta && fetched, JSON.stringify(seen.map((s) => [s.parserId, s.record.operation])));
    assert.equal(meta.parserId, a.instance);
    assert.equal(fetched.parserId, b.instance, "the fetch was decoded by the other replica");
    assert.equal(meta.record.attributes["kafka.topic_id_names"], undefined, "the pairs stay in the parser");
    assert.equal(fetched.record.resource, TOPIC, "named from the other replica's Metadata");
    assert.equal(fetched.record.attributes["messaging.destination.name"]?.value.value, TOPIC);
    assert.equal(fetched.record.attributes["kafka.topic_ids"], undefined);
    const [sa, sb] = await Promise.all([parserStatus(a), parserStatus(b)]);
    assert.equal(sa.counters["kafka_topic_ids.shared_out"], 1);
    assert.equal(sb.counters["kafka_topic_ids.named"], 1);
    assert.equal(sb.counters["kafka_topic_ids.unnamed"] ?? 0, 0);

    // a third replica, started now, reads the bucket's snapshot
    const c = await startParser(bed.nats.url, ARGS, "topics-2");
    bed.procs.push(c);
    await waitFor(async () => ((await parserStatus(c)).counters["kafka_topic_ids.known"] ?? 0) === 1, { timeoutMs: 20_000, what: `the new replica knows ${topicId}` });
  });
});
