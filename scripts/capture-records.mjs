#!/usr/bin/env node
// Copies the records of some services out of a records stream into a fixture file, to replay
// real traffic in tests (test/support/records-fixture.ts reads it back).
//   node scripts/capture-records.mjs --nats-url nats://127.0.0.1:4222 --services '^(web|api):' --out f.bin.gz
// File: gzip of length-prefixed (u32 little endian) wirescope.v1.Record messages, in stream order.
// A record is kept when the service of either end matches; records of the whole chain of a
// request are kept so that traces stay linked.
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import zlib from "node:zlib";
import fs from "node:fs";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { RecordBatchSchema, RecordSchema, recordsOf } from "@wirescope/wire";
import { inboxPrefixFor } from "@wirescope/runtime";

const arg = (n, d) => {
  const i = process.argv.indexOf(n);
  return i > 0 ? process.argv[i + 1] : d;
};
const services = new RegExp(arg("--services", "."));
const stream = arg("--stream", "WIRESCOPE_RECORDS");
const out = arg("--out");
if (!out) throw new Error("--out FILE is required");
const user = arg("--nats-user");
// `up`'s nats-server lets a user subscribe to its own inboxes only
const nc = await connect({ servers: arg("--nats-url", "nats://127.0.0.1:4222"), user, pass: arg("--nats-password"), inboxPrefix: inboxPrefixFor(user) });
const js = jetstream(nc);
const c = await js.consumers.get(stream); // ordered consumer: reads the stream from its start
const info = await (await jetstreamManager(nc)).streams.info(stream);
const parts = [];
let kept = 0;
let seen = 0;
for (let seq = 0; seq < info.state.messages; ) {
  const msgs = await c.fetch({ max_messages: 500, expires: 2000 });
  let n = 0;
  for await (const m of msgs) {
    n++;
    seq++;
    for (const r of recordsOf(fromBinary(RecordBatchSchema, m.data))) {
      seen++;
      if (!services.test(r.client?.service ?? "") && !services.test(r.server?.service ?? "")) continue;
      const b = toBinary(RecordSchema, r);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(b.length);
      parts.push(len, b);
      kept++;
    }
  }
  if (n === 0) break;
}
fs.writeFileSync(out, zlib.gzipSync(Buffer.concat(parts), { level: 9 }));
console.log(`${kept} of ${seen} records -> ${out} (${fs.statSync(out).size} bytes)`);
await nc.close();
