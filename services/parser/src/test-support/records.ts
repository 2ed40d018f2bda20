// For tests only (imported by path, never from the package index): the records a Pipeline
// published, read back from its RecordBatch bytes.
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { RecordBatchSchema, RecordSchema, recordsOf } from "@wirescope/wire";
import type { Pipeline } from "../pipeline.js";

/** Every record `p` has published so far (takeOutput), by connection, in order: protobuf bytes as hex. */
export function recordsByConn(p: Pipeline): Map<bigint, string[]> {
  const out = new Map<bigint, string[]>();
  for (const b of p.takeOutput()) {
    for (const r of recordsOf(fromBinary(RecordBatchSchema, b.bytes))) {
      const list = out.get(r.connKey) ?? [];
      list.push(Buffer.from(toBinary(RecordSchema, r)).toString("hex"));
      out.set(r.connKey, list);
    }
  }
  return out;
}
