import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { RecordBatchSchema, RecordSchema } from "./gen/wirescope/v1/record_pb.js";
import { recordsOf } from "./record-batch.js";
import { WireError } from "./reader.js";
import { everyField } from "./test-support/wire.js";

describe("recordsOf", () => {
  it("reads each record as its own bytes followed by its connection entry's", () => {
    const noRef = (m: string, f: string) => (m === "wirescope.v1.Record" && f === "connection" ? 0 : undefined);
    const entries = [everyField(RecordSchema, { salt: 3, value: noRef }), everyField(RecordSchema, { salt: 5, value: noRef })];
    const own = [everyField(RecordSchema, { salt: 1, value: noRef }), create(RecordSchema, { protocol: "redis" }), create(RecordSchema, { protocol: "kafka" })];
    const refs = [2, 1, 0];
    const batch = create(RecordBatchSchema, { records: own.map((r, k) => ({ ...r, connection: refs[k]! })), connections: entries });
    const got = recordsOf(fromBinary(RecordBatchSchema, toBinary(RecordBatchSchema, batch)));
    own.forEach((r, k) => {
      const tail = refs[k] ? toBinary(RecordSchema, entries[refs[k]! - 1]!) : new Uint8Array(0);
      const want = fromBinary(RecordSchema, new Uint8Array([...toBinary(RecordSchema, r), ...tail]));
      assert.ok(equals(RecordSchema, got[k]!, want), `record ${k}`);
      assert.equal(got[k]!.connection, 0);
    });
  });

  it("gives records of one connection sub-messages of their own", () => {
    const entry = create(RecordSchema, { client: { address: "10.0.0.1", port: 1 }, connKey: 5n });
    const batch = fromBinary(RecordBatchSchema, toBinary(RecordBatchSchema, create(RecordBatchSchema, { records: [{ connection: 1 }, { connection: 1 }], connections: [entry] })));
    const [a, b] = recordsOf(batch);
    a!.client!.port = 99;
    assert.equal(b!.client!.port, 1);
  });

  it("refuses a record that names an entry the batch does not have", () => {
    const batch = create(RecordBatchSchema, { records: [{ connection: 2 }], connections: [create(RecordSchema)] });
    assert.throws(() => recordsOf(batch), WireError);
  });
});
