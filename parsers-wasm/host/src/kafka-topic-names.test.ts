import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AttributeValueSchema, RecordSchema, StringListSchema } from "@wirescope/wire/gen/wirescope/v1/record_pb";
import { TopicNameDirectory } from "./kafka-topic-names.js";

const id = (n: number) => n.toString(16).padStart(32, "0");
const list = (values: string[]) => create(AttributeValueSchema, { value: { case: "stringList", value: create(StringListSchema, { values }) } });
const str = (value: string) => create(AttributeValueSchema, { value: { case: "stringValue", value } });

function record(operation: string, attrs: Record<string, ReturnType<typeof list>>, resource = ""): Uint8Array {
  return toBinary(RecordSchema, create(RecordSchema, { protocol: "kafka", operation, resource, attributes: { "messaging.system": str("kafka"), ...attrs } }));
}

describe("TopicNameDirectory", () => {
  it("learns a Metadata record's pairs (removing them), names the ids of a Fetch record, leaves unknown ids", () => {
    const shared: string[] = [];
    const d = new TopicNameDirectory((i, n) => shared.push(`${i}=${n}`));
    const meta = fromBinary(RecordSchema, d.process(record("Metadata", { "kafka.topic_id_names": list([`${id(1)}=orders`, `${id(2)}=events`, "junk", `${id(3)}=`]) }, "orders,events")));
    assert.equal(meta.attributes["kafka.topic_id_names"], undefined);
    assert.equal(meta.resource, "orders,events");
    assert.deepEqual(shared, [`${id(1)}=orders`, `${id(2)}=events`], "only well-formed pairs, each once");
    const fetch = fromBinary(RecordSchema, d.process(record("Fetch", { "kafka.topics": list(["logs"]), "kafka.topic_ids": list([id(2), id(9)]) }, "logs")));
    assert.equal(fetch.resource, "logs,events");
    assert.deepEqual(fetch.attributes["kafka.topics"]?.value.value, create(StringListSchema, { values: ["logs", "events"] }));
    assert.deepEqual(fetch.attributes["kafka.topic_ids"]?.value.value, create(StringListSchema, { values: [id(9)] }));
    assert.equal(fetch.attributes["messaging.destination.name"], undefined, "two topics: no single destination");
    const one = fromBinary(RecordSchema, d.process(record("Fetch", { "kafka.topic_ids": list([id(1)]) })));
    assert.equal(one.resource, "orders");
    assert.equal(one.attributes["messaging.destination.name"]?.value.value, "orders");
    assert.equal(one.attributes["kafka.topic_ids"], undefined);
    assert.deepEqual(d.counts, { learned: 2, named: 2, unnamed: 1, malformed: 0 });
    // pairs from elsewhere (another replica) are not handed back
    assert.equal(d.learn(id(4), "audit"), true);
    assert.equal(d.learn(id(4), "audit"), false);
    assert.equal(shared.length, 2);
  });

  it("passes other records through as the same bytes, after one byte search", () => {
    const d = new TopicNameDirectory();
    const b = record("Produce", { "kafka.topics": list(["orders"]) }, "orders");
    assert.equal(d.process(b), b);
    const garbage = new Uint8Array([0x62, ...Buffer.from("kafka.topic_ids"), 0xff]);
    assert.equal(d.process(garbage), garbage, "undecodable: left as it is, counted");
    assert.equal(d.counts.malformed, 1);
  });

  it("is bounded: the oldest learned are forgotten first", () => {
    const d = new TopicNameDirectory(undefined, { maxIds: 100 });
    for (let i = 0; i < 250; i++) d.learn(id(i), `t${i}`);
    assert.equal(d.size, 100);
    assert.equal(d.get(id(149)), undefined);
    assert.equal(d.get(id(150)), "t150");
  });

  it("learns a million ids past its bound in bounded time, the last maxIds/2 always known", { timeout: 10_000 }, async () => {
    // Forgetting the oldest id one by one (`keys().next()` on a Map that deletes) cost ~20 µs per
    // id learned past 65,536 (about 20 s for this loop); now ~1 µs.
    const d = new TopicNameDirectory();
    for (let i = 0; i < 1_000_000; i++) {
      d.learn(id(i), `t${i}`);
      if (i % 10_000 === 0) await new Promise<void>((r) => setImmediate(r));
    }
    assert.ok(d.size <= 65_536);
    assert.equal(d.get(id(999_999)), "t999999");
    assert.equal(d.get(id(1_000_000 - 32_768)), `t${1_000_000 - 32_768}`);
    assert.equal(d.get(id(0)), undefined);
  });
});
