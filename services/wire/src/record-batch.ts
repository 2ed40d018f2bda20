// A RecordBatch read by protobuf-es, its records made whole: each connection's shared fields are
// written once per batch (RecordBatch.connections) and named by the records (Record.connection).
// The hand readers resolve the same rule themselves (the aggregator's lean decoder); this is the
// reference for everyone who reads a batch with protobuf-es (tail, tests, the aggregator's fallback).
import { clone, merge } from "@bufbuild/protobuf";
import { type Record, type RecordBatch, RecordSchema } from "./gen/wirescope/v1/record_pb.js";
import { WireError } from "./reader.js";

/**
 * The batch's records, each merged with the connection entry it names (as its own bytes followed
 * by the entry's would decode) and its `connection` cleared; in place. A record naming an entry
 * the batch does not have throws WireError (the batch is malformed).
 */
export function recordsOf(batch: RecordBatch): Record[] {
  const conns = batch.connections;
  for (const r of batch.records) {
    const n = r.connection;
    if (n === 0) continue;
    const c = conns[n - 1];
    if (c === undefined) throw new WireError(`a record names connection ${n} of a batch that has ${conns.length}`);
    // merge() shares the entry's sub-messages between the records that name it: copied here, so
    // that a reader may change one record without changing the others
    merge(RecordSchema, r, clone(RecordSchema, c));
    r.connection = 0;
  }
  return batch.records;
}
